"""pipeline_ex's data and control steps: data_transform, file_ops, while_loop, nested pipelines, test_echo. A mixin of the compat translator: one method per step type, named after it."""

from __future__ import annotations

from ._compat_refs import Expressions


class FlowSteps(Expressions):
    """Step types that translate here, by the keys each may have."""

    STEP_KEYS: dict[str, set[str]] = {}
