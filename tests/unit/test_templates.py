"""Placeholders: bare names only, rendered in jinja2's sandbox, checked without rendering."""

from __future__ import annotations

import pytest

from robocall.errors import InputError
from robocall.flow.templates import compile_template

SEED_MESSAGE = "Dear Mr {{name}}, the amount of {{amount}} will be due on {{dueDate}}"
ALEX = {"name": "Alex", "dueDate": "August 20th, 2020", "amount": "200,000$"}


def test_the_seed_message_renders_with_the_seed_properties():
    template = compile_template(SEED_MESSAGE)
    assert template.render(ALEX) == (
        "Dear Mr Alex, the amount of 200,000$ will be due on August 20th, 2020"
    )
    assert template.names == ("name", "amount", "dueDate")


@pytest.mark.parametrize(
    "text",
    [SEED_MESSAGE, "no placeholders", "{{ name }}{{name}}", "ends with a newline {{ name }}\n",
     "  {{name}} and {{ amount }}  "],
)
def test_the_length_without_rendering_equals_the_rendered_length(text: str):
    template = compile_template(text)
    assert template.rendered_length(ALEX) == len(template.render(ALEX))


def test_missing_names_are_listed_once_in_order_of_use():
    template = compile_template("{{b}} {{a}} {{b}} {{name}}")
    assert template.missing({"name": "x"}) == ["b", "a"]
    assert template.missing({"a": "1", "b": "2", "name": "3"}) == []


def test_values_are_data_not_templates():
    # a destination's value that looks like a placeholder is printed as it is
    assert compile_template("hi {{name}}").render({"name": "{{ secret }}"}) == "hi {{ secret }}"


def test_values_are_not_html_escaped():
    assert compile_template("{{name}}").render({"name": "<A & B>"}) == "<A & B>"


@pytest.mark.parametrize(
    "text",
    [
        "{{ name.upper() }}",
        "{{ name.__class__ }}",
        "{{ name['x'] }}",
        "{{ name | upper }}",
        "{{ 7 * 7 }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for x in range(3) %}{{x}}{% endfor %}",
        "{% if name %}yes{% endif %}",
        "{{ name if name else 'x' }}",
        "{{ 'literal' }}",
    ],
)
def test_anything_but_a_bare_name_is_refused(text: str):
    with pytest.raises(InputError, match="only {{ name }} placeholders are allowed"):
        compile_template(text)


def test_a_malformed_placeholder_is_refused():
    with pytest.raises(InputError, match="malformed placeholder"):
        compile_template("Dear {{ name")


def test_jinja_globals_do_not_answer_for_a_missing_name():
    # "range" is a jinja global; a destination without it must not print a function
    template = compile_template("{{ range }}")
    assert template.missing({}) == ["range"]
    with pytest.raises(InputError, match="placeholder missing"):
        template.render({})


@pytest.mark.parametrize("name", ["self", "loop", "super", "caller", "varargs", "kwargs",
                                  "range", "namespace", "joiner", "context", "environment"])
def test_every_name_a_client_may_send_is_filled_with_its_property(name: str):
    # names that mean something to jinja are just property names in a message
    template = compile_template(f"Dear {{{{ {name} }}}}, and {{{{{name}}}}} again")
    assert template.render({name: "Alex"}) == "Dear Alex, and Alex again"


def test_whitespace_control_is_kept_as_jinja_would_render_it():
    template = compile_template("Dear   {{- name -}}  !")
    assert template.render({"name": "Alex"}) == "DearAlex!"
    assert template.rendered_length({"name": "Alex"}) == len("DearAlex!")
