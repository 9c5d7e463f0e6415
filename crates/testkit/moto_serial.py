"""moto server that answers one request at a time.

moto's TransactWriteItems snapshots whole tables and restores them when a
transaction fails, so under its default threaded server two concurrent
transactions can wipe each other's writes: an emulator artefact, not DynamoDB
behaviour. Serving requests one by one keeps every call atomic, as DynamoDB
guarantees, while the clients under test still interleave their calls freely.
"""

import os
import sys

from werkzeug.serving import run_simple

from moto.server import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False, use_reloader=False)
