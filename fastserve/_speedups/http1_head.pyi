# The compiled twin of fastserve.protocols.http1_head: same classes, same behaviour.
from fastserve.protocols.http1_head import RequestHead as RequestHead
from fastserve.protocols.http1_head import extension_method as extension_method
