"""The evaluation tests run pipelines as the workflow tests do (the claude provider: the real SDK
against FakeAnthropic), with their helpers."""

from tests.workflow._wf import prompts, run, spec_error

__all__ = ["prompts", "run", "spec_error"]
