# The compiled twin of fastserve.state: the same class, the same behaviour.
from fastserve.state import ServerState as ServerState
