"""A tool's description is its docstring's prose, and its parameter docs (Google, numpy or reST)
become the properties' descriptions."""

from __future__ import annotations

from pipeline_nb.tools import tool_from_function


def described(fn) -> tuple[str, dict[str, str | None]]:
    tool = tool_from_function(fn)
    properties = tool.input_schema["properties"]
    return tool.description, {name: schema.get("description") for name, schema in properties.items()}


def test_google_style_args_with_types_and_continuation_lines():
    def search(query: str, limit: int = 10, exact: bool = False) -> list[str]:
        """Search the corpus for passages.

        Results are ordered by score.

        Args:
            query (str): Words to look for;
                quotes make a phrase.
            limit: How many passages to return.

        Returns:
            list[str]: The passages.
        """

    assert described(search) == ("Search the corpus for passages.\n\nResults are ordered by score.",
                                 {"query": "Words to look for; quotes make a phrase.",
                                  "limit": "How many passages to return.", "exact": None})


def test_numpy_style_parameters_section():
    def resample(frame: str, rule: str, how: str = "mean"):
        """Resample a time series.

        Parameters
        ----------
        frame : str
            Name of the table.
        rule, how : str
            Pandas offset alias
            and aggregation.

        Returns
        -------
        str
            The new table's name.
        """

    assert described(resample) == ("Resample a time series.", {
        "frame": "Name of the table.", "rule": "Pandas offset alias and aggregation.",
        "how": "Pandas offset alias and aggregation."})


def test_rest_style_param_fields():
    def convert(amount: float, currency: str = "EUR"):
        """Convert an amount to dollars.

        :param amount: The amount,
            in the given currency.
        :param str currency: ISO code.
        :returns: Dollars.
        :rtype: float
        """

    assert described(convert) == ("Convert an amount to dollars.",
                                  {"amount": "The amount, in the given currency.", "currency": "ISO code."})


def test_no_docstring_gives_an_empty_description_and_no_descriptions_key_is_sent():
    def bare(x: int): ...

    tool = tool_from_function(bare)
    assert described(bare) == ("", {"x": None})
    assert "description" not in tool.to_api()


def test_an_example_ends_the_description():
    def double(x: int) -> int:
        """Double a number.

        >>> double(2)
        4
        """

    assert described(double)[0] == "Double a number."
