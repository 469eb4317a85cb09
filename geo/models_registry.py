"""Imports every package's models so that ``Base.metadata`` knows every table.

Alembic and the tests need the whole schema; ``geo`` itself imports none of the other packages
at import time, only here, on demand.
"""
from importlib import import_module

for _module in ("topology.models", "outlets.models", "outages.models"):
    try:
        import_module(_module)
    except ModuleNotFoundError as error:
        if error.name != _module:
            raise

# Indexes one package declares on another's tables, now that every table is known.
try:
    from outlets.models import index_service_point_addresses
except ModuleNotFoundError:
    pass
else:
    index_service_point_addresses()
