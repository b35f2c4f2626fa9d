"""Test helpers for pipeline_nb and its users: a loopback fake of the Messages API.

    from pipeline_nb.testing import FakeAnthropic

    with FakeAnthropic() as fake:
        fake.reply("Hello", when="greet")
        fake.fault("overloaded", times=1, after=3)
        ...  # point ANTHROPIC_BASE_URL (or base_url:) at fake.base_url

The pytest plugin (``pipeline_nb.testing.plugin``, registered as an entry point) adds
the ``fake_anthropic`` fixture.
"""

from .fake_anthropic import FakeAnthropic, RecordedRequest

__all__ = ["FakeAnthropic", "RecordedRequest"]
