from .upstream import (ConversionError, convert_upstream_state_dict, describe_upstream,
                       load_converted)

__all__ = ['ConversionError', 'convert_upstream_state_dict', 'describe_upstream', 'load_converted']
