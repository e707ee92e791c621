"""FreeSWITCH Event Socket: sans-IO frame parser, pure command builders, gevent transport."""
