"""Named dependencies the routes receive (declared at the app: ``runtime`` and ``principal``)."""

from __future__ import annotations

from litestar.di import NamedDependency

from cambist.accounts.permissions import Principal
from cambist.api.runtime import Runtime

RuntimeDep = NamedDependency[Runtime]
PrincipalDep = NamedDependency[Principal]
