"""Every conformance test, importable in one line (see :mod:`mofa.persistence.testing`)."""

from mofa.persistence.testing.conformance.listing import *  # noqa: F403
from mofa.persistence.testing.conformance.messages import *  # noqa: F403
from mofa.persistence.testing.conformance.ownership import *  # noqa: F403
from mofa.persistence.testing.conformance.pruning import *  # noqa: F403
from mofa.persistence.testing.conformance.restore import *  # noqa: F403
from mofa.persistence.testing.conformance.sessions import *  # noqa: F403
from mofa.persistence.testing.conformance.state import *  # noqa: F403
from mofa.persistence.testing.conformance.times import *  # noqa: F403
from mofa.persistence.testing.conformance.transfer import *  # noqa: F403
from mofa.persistence.testing.conformance.values import *  # noqa: F403
