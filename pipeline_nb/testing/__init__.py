"""Test helpers for pipeline_nb and its users: loopback fakes of the Messages API
(FakeAnthropic) and of the Gemini API (FakeGemini), and assertions on a PipelineRun.

    from pipeline_nb.testing import FakeAnthropic, assert_step

    with FakeAnthropic() as fake:
        fake.reply("Hello", when="greet")
        fake.fault("overloaded", times=1, after=3)
        ...  # point ANTHROPIC_BASE_URL (or base_url:) at fake.base_url

It also serves Message Batches (create, retrieve, results, cancel): ``fake.batch_polls(n)``
sets how many polls a batch stays in progress, ``fake.batches`` lists the batches created,
and the fault kinds ``"expired"`` and ``"canceled"`` apply to batch items.

``FakeGemini`` does the same for ``provider: gemini`` (point ``GEMINI_BASE_URL`` at its
``base_url``): ``reply(...)``, ``fault(...)`` and ``requests`` as above, in Google's wire format.

The pytest plugin (``pipeline_nb.testing.plugin``, registered as an entry point) adds the
``fake_anthropic``, ``fake_gemini``, ``pipeline_cassette`` and ``run_pipeline`` fixtures and the
``--pipeline-cassette-mode`` option.
"""

from ._asserts import assert_checks_pass, assert_run_ok, assert_same_results, assert_step
from ._documents import pdf_bytes
from ._fake_anthropic import FakeAnthropic, RecordedRequest
from ._fake_gemini import FakeGemini

__all__ = ["FakeAnthropic", "FakeGemini", "RecordedRequest", "assert_checks_pass", "assert_run_ok", "assert_same_results",
           "assert_step", "pdf_bytes"]
