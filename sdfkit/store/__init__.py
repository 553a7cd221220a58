"""The store: sdfkit's dataset format v1 (``format``), reading it (``dataset``), checking it
(``validate``), describing it (``report``) and one writer at a time (``lock``)."""

from sdfkit.store.format import *  # noqa: F403 - the format's API, as sdfkit.store
from sdfkit.store.format import __all__  # noqa: F401
