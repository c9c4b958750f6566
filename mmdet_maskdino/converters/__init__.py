from .loading import ArrayUnpickler, UnsafeCheckpointError, load_upstream_checkpoint
from .upstream import (ConversionError, convert_upstream_state_dict, describe_upstream,
                       load_converted)

__all__ = [
    'ArrayUnpickler', 'ConversionError', 'UnsafeCheckpointError', 'convert_upstream_state_dict',
    'describe_upstream', 'load_converted', 'load_upstream_checkpoint'
]
