# The compiled twin of fastserve.protocols.cycle: same classes, same behaviour.
from fastserve.protocols.cycle import AppCycle as AppCycle
