# The compiled twin of fastserve.protocols.http1_cycle: same classes, same behaviour.
from fastserve.protocols.http1_cycle import RequestCycle as RequestCycle
from fastserve.protocols.http1_cycle import status_line as status_line
