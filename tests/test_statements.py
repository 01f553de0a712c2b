"""Logits matching (C.5): options as statements."""

import pytest

from focus_eval.statements import option_statement


@pytest.mark.parametrize("question, option, statement", [
    # V*Bench's direct attributes
    ("What is the color of the woman's shirt?", "red", "The color of the woman's shirt is red."),
    ("What is the material of the glove?", "rubber.", "The material of the glove is rubber."),
    ("what is the  colour of the  cup on the table ?", "light blue", "The colour of the cup on the table is light blue."),
    # V*Bench's relative positions
    ("Is the red backpack on the left or right side of the white car?", "left",
     "The red backpack is on the left side of the white car."),
    ("Is the dog on the left or the right side of the bench?", "right", "The dog is on the right side of the bench."),
    # other forms keep the option
    ("How many boats are there?", "3", "3"),
    ("Which animal is on the sofa?", "a cat", "a cat"),
])
def test_option_statement(question, option, statement):
    assert option_statement(question, option) == statement
