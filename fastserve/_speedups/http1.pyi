# The compiled twin of fastserve.protocols.http1: same classes, same behaviour.
from fastserve.protocols.http1 import HTTP1Protocol as HTTP1Protocol
from fastserve.protocols.http1 import RequestCycle as RequestCycle
from fastserve.protocols.http1 import error_status as error_status
from fastserve.protocols.http1 import status_line as status_line
