# The compiled twin of fastserve.protocols.http1_replay: same functions, same behaviour.
from fastserve.protocols.http1_replay import head_bytes_begun as head_bytes_begun
from fastserve.protocols.http1_replay import keep_for_replay as keep_for_replay
from fastserve.protocols.http1_replay import park as park
from fastserve.protocols.http1_replay import parse_extension_method as parse_extension_method
from fastserve.protocols.http1_replay import parse_fast as parse_fast
from fastserve.protocols.http1_replay import replay_base as replay_base
from fastserve.protocols.http1_replay import resume_fast_parsing as resume_fast_parsing
