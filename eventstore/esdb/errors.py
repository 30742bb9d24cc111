"""esdbclient's exceptions -> the port's, at the adapter boundary.

Only the translations that do not depend on the operation live here; those that do (a missing
stream reads as empty, a missing group is `SubscriptionGroupNotFound`, ...) are at the call sites.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from esdbclient.exceptions import (
    AlreadyExists,
    DeadlineExceeded,
    DiscoveryFailed,
    EventStoreDBClientException,
    MaximumSubscriptionsReached,
    ServiceUnavailable,
    StreamIsDeleted,
)

from eventstore.port import (
    EventStoreError,
    MaxSubscribersReached,
    StoreUnavailable,
    StreamDeleted,
    SubscriptionGroupExists,
)


@contextmanager
def translated(stream: str = "") -> Iterator[None]:
    """Run a client call, raising the port's errors for esdbclient's (`stream`: for messages)."""
    try:
        yield
    except StreamIsDeleted as error:
        raise StreamDeleted(stream) from error
    except AlreadyExists as error:
        raise SubscriptionGroupExists(str(error)) from error
    except MaximumSubscriptionsReached as error:
        raise MaxSubscribersReached(str(error)) from error
    except (ServiceUnavailable, DeadlineExceeded, DiscoveryFailed) as error:
        raise StoreUnavailable(f"EventStoreDB unavailable: {error}") from error
    except grpc.aio.UsageError as error:  # a closed channel
        raise StoreUnavailable(f"EventStoreDB connection closed: {error}") from error
    except EventStoreDBClientException as error:
        raise EventStoreError(f"EventStoreDB: {type(error).__name__}: {error}") from error
