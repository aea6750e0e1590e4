from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.trade.network import Net, build_net


@pytest.fixture
def net(engine: sa.Engine) -> Net:
    return build_net(engine)
