import pytest

from focus_eval.config import DATASETS, FocusConfig, load_config
from focus_eval.targets import (
    ICL_EXAMPLES,
    NEED_SENTENCE,
    Target,
    TargetSet,
    icl_prompt,
    normalize_target,
    options_from_prompt,
    parse_reply,
    question_from_prompt,
    resolve_targets,
    rule_based_targets,
    singular_target,
)

# Prompts as lmms-eval 0.7.3's tasks build them (see the engineering notes).
VSTAR_RAW = ("What is the material of the glove?\n(A) rubber\n(B) cotton\n(C) leather\n(D) wool\n"
             "Answer with the option's letter from the given choices directly.")
# vstar_doc_to_text rewrites "(A) .." to "A. .." lines and appends its post prompt
VSTAR_LMMS = ("Is the red car on the left or right side of the police car?\nA. left\nB. right\n"
              "Answer with the option's letter from the given choices directly.")
VSTAR_INLINE = "What is the color of the woman's bag? (A) black (B) white (C) red (D) blue"
HRBENCH = ("What is the number on the jersey of the player holding the ball?\nA. 7\nB. 11\nC. 23\nD. 4\n"
           "Answer the option letter directly.")
MME_REALWORLD = (
    "What is the license plate number of the white car? The choices are listed below:\n"
    "(A) AB123\n(B) CD456\n(C) EF789\n(D) GH012\n(E) The image does not feature the license plate.\n"
    "Select the best answer to the above multiple-choice question based on the image. Respond with only "
    "the letter (A, B, C, D, or E) of the correct option.\nThe best answer is: ")


# ---- prompts -> question and options -------------------------------------------------------

@pytest.mark.parametrize("prompt, question", [
    (VSTAR_RAW, "What is the material of the glove?"),
    (VSTAR_LMMS, "Is the red car on the left or right side of the police car?"),
    (VSTAR_INLINE, "What is the color of the woman's bag?"),
    (HRBENCH, "What is the number on the jersey of the player holding the ball?"),
    (MME_REALWORLD, "What is the license plate number of the white car?"),
    ("<image>\nHow many boats are there? Answer the question using a single word or phrase.",
     "How many boats are there?"),
    ("What is the colour of the sign?", "What is the colour of the sign?"),
])
def test_question_from_prompt(prompt, question):
    assert question_from_prompt(prompt) == question


@pytest.mark.parametrize("prompt, options", [
    (VSTAR_RAW, [("A", "rubber"), ("B", "cotton"), ("C", "leather"), ("D", "wool")]),
    (VSTAR_LMMS, [("A", "left"), ("B", "right")]),
    (VSTAR_INLINE, [("A", "black"), ("B", "white"), ("C", "red"), ("D", "blue")]),
    (HRBENCH, [("A", "7"), ("B", "11"), ("C", "23"), ("D", "4")]),
    (MME_REALWORLD, [("A", "AB123"), ("B", "CD456"), ("C", "EF789"), ("D", "GH012"),
                     ("E", "The image does not feature the license plate")]),
    ("Is the cat left (A) right; (B) left.", [("A", "right"), ("B", "left")]),
    ("What is the colour of the sign?", []),
])
def test_options_from_prompt(prompt, options):
    assert options_from_prompt(prompt) == options


def test_a_lone_letter_is_not_an_option_block():
    prompt = "A. Lincoln's statue stands here. What is in front of it?"
    assert options_from_prompt(prompt) == []
    assert question_from_prompt(prompt) == prompt
    # the first run that continues A, B, ... wins; a lone "(A)" earlier is ignored
    assert options_from_prompt("Box (A) is red. Which? (A) one (B) two") == [("A", "one"), ("B", "two")]


# ---- in-context prompt ---------------------------------------------------------------------

def test_every_dataset_has_examples_and_unknown_is_refused():
    assert set(ICL_EXAMPLES) == {None, *DATASETS}
    with pytest.raises(ValueError, match="no in-context examples"):
        icl_prompt("What is it?", "textvqa")


@pytest.mark.parametrize("dataset", [None, *DATASETS])
def test_example_sets(dataset):
    examples = ICL_EXAMPLES[dataset]
    assert 4 <= len(examples) <= 6
    assert any(any(t.startswith("all ") for t in targets) for _, _, targets in examples)  # type 2
    assert any(targets == [] for _, _, targets in examples)  # whole image, no object
    assert any(len(targets) >= 2 for _, _, targets in examples)  # several objects


@pytest.mark.parametrize("dataset", [None, *DATASETS])
def test_icl_prompt_format_and_examples_parse_back(dataset):
    prompt = icl_prompt("  What is the color of the dog?  ", dataset)
    blocks = prompt.split("\n\n")
    examples = ICL_EXAMPLES[dataset]
    assert len(blocks) == len(examples) + 2  # intro, examples, the question
    assert blocks[-1] == ("Question: What is the color of the dog?\n"
                          "If you want to answer the question, which objects' information do you need?\nAnswer:")
    for block, (question, _, targets) in zip(blocks[1:-1], examples):
        assert block.startswith(f"Question: {question}\nIf you want to answer the question, which objects'")
        assert NEED_SENTENCE in block and block.endswith(".")
        assert parse_reply(block) == targets  # the parser reads its own examples
    assert len(prompt) < 2000  # short: it runs once per question


def test_icl_prompt_is_deterministic_and_differs_per_benchmark():
    assert icl_prompt("Q?", "vstar") == icl_prompt("Q?", "vstar")
    prompts = {icl_prompt("Q?", d) for d in (None, "vstar", "hrbench4k", "mme_realworld_lite")}
    assert len(prompts) == 4
    assert icl_prompt("Q?", "hrbench4k") == icl_prompt("Q?", "hrbench8k")


# ---- reply parsing -------------------------------------------------------------------------

@pytest.mark.parametrize("reply, targets", [
    ("The answer depends on both. So I need the information about the following objects: red car and police car.",
     ["red car", "police car"]),
    ("So I need the information about the following objects: fountain, statue and lamp post.",
     ["fountain", "statue", "lamp post"]),
    ("So I need the information about the following objects: the fountain, a statue, and an old lamp post",
     ["fountain", "statue", "old lamp post"]),
    ("So I need the information about the following objects: all boats.", ["all boats"]),
    ("So I need the information about the following objects: all of the boats and the lake.",
     ["all boats", "lake"]),
    ('So I need the information about the following objects: "blue sign".', ["blue sign"]),
    ("so i need the information about the following objects:   dog ,cat", ["dog", "cat"]),
    ("So I need the information about the following object: woman's umbrella.", ["woman's umbrella"]),
    ("So I need the information about the following objects:\nbench.", ["bench"]),
    # duplicates (any case) and pronouns / the image itself are dropped, order kept
    ("So I need the information about the following objects: dog, it, Dog, the image and cat.", ["dog", "cat"]),
    ("So I need the information about the following objects: the whole image.", []),
    ("So I need the information about the following objects: none.", []),
    ("So I need the information about the following objects: them and this.", []),
    ("So I need the information about the following objects: .", []),
    ("So I need the information about the following objects:", []),
])
def test_parse_reply(reply, targets):
    assert parse_reply(reply) == targets


def test_parse_reply_uses_the_last_sentence_and_stops_at_its_end():
    reply = ("So I need the information about the following objects: cup.\n"
             "Question: What is on the plate?\nIf you want to answer ...\n"
             "Answer: So I need the information about the following objects: plate and fork. "
             "Question: next one")
    assert parse_reply(reply) == ["plate", "fork"]
    runaway = "So I need the information about the following objects: cat. And then the dog and the bird"
    assert parse_reply(runaway) == ["cat"]


@pytest.mark.parametrize("reply", [
    "", "   ", "I need the car.", "objects: car", "ĠĠ<unk>Ġthe Ġthe\x00 ### 12 12 12",
    "So I need information about car",  # the sentence is incomplete
])
def test_parse_reply_without_the_sentence(reply):
    assert parse_reply(reply) is None


def test_parse_reply_drops_runaway_phrases():
    garbage = "So I need the information about the following objects: " + " ".join(["blah"] * 20) + " and cat."
    assert parse_reply(garbage) == ["cat"]


def test_normalize_target():
    assert normalize_target("  The  red car. ") == "red car"
    assert normalize_target("All the chairs") == "all chairs"
    assert normalize_target("all") is None
    assert normalize_target("these") is None
    assert normalize_target("'12'") is None  # no letters: not an object name
    assert normalize_target("the entire picture") is None
    assert normalize_target("STOP sign") == "STOP sign"


# ---- rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("question, targets", [
    # V*Bench
    ("What is the color of the woman's bag?", ["woman's bag"]),
    ("What is the material of the glove?", ["glove"]),
    ("Is the red car on the left or right side of the police car?", ["red car", "police car"]),
    ("Is the color of the plastic bucket black or green?", ["plastic bucket"]),
    ("What is the relative position of the cyclist to the bus?", ["cyclist", "bus"]),
    # HRBench
    ("What is the number on the jersey of the player?", ["jersey", "player"]),
    ("What is written on the sign above the door?", ["sign", "door"]),
    ("What color is the umbrella held by the woman in the lower left corner?", ["umbrella", "woman"]),
    ("Which is bigger, the red ball or the blue ball?", ["red ball", "blue ball"]),
    ("What does the text on the sign say?", ["sign"]),
    # MME-RealWorld
    ("What is the license plate number of the white car?", ["white car"]),
    ("What is the status of the traffic light in front of the ego vehicle?", ["traffic light", "ego vehicle"]),
    ("What is the phone number written on the truck?", ["truck"]),
    ("What kind of animal is on the sofa?", ["animal", "sofa"]),
    ("Is the dark red bag on the chair?", ["dark red bag", "chair"]),
    ("Are there cars parked near buildings?", ["cars"]),
    ("What is written on signs near buildings?", ["signs", "buildings"]),
])
def test_rule_based_targets(question, targets):
    assert rule_based_targets(question) == targets


@pytest.mark.parametrize("question, targets", [
    ("How many people are on the boat?", ["all people", "boat"]),
    ("How many cars are there in the image?", ["all cars"]),
    ("How many of the cars are red?", ["all cars"]),
    ("What is the total number of chairs in the room?", ["all chairs", "room"]),
    ("What is the number of people in the picture?", ["all people"]),
    ("How many red trucks can be seen?", ["all red trucks"]),
])
def test_rule_based_counting_gives_all_x(question, targets):
    assert rule_based_targets(question) == targets


@pytest.mark.parametrize("question", [
    "Is it daytime?",
    "What is the weather like in the picture?",
    "Is this photo taken at night?",
    "What is the overall atmosphere of the scene?",
    "How many?",
    "What is shown?",
    "",
])
def test_rule_based_targets_empty_when_no_object_is_named(question):
    assert rule_based_targets(question) == []


# ---- resolution ----------------------------------------------------------------------------

def test_resolve_from_reply():
    result = resolve_targets("Is the cup left of the plate?",
                             "So I need the information about the following objects: cup and plate.")
    assert result == TargetSet(targets=(Target("cup", False), Target("plate", False)), question_type=1,
                               source="icl",
                               reply="So I need the information about the following objects: cup and plate.")


def test_resolve_type2_when_any_target_is_all():
    reply = "So I need the information about the following objects: all bikes and the rack."
    result = resolve_targets("How many bikes are at the rack?", reply)
    assert result.source == "icl" and result.question_type == 2
    assert result.targets == (Target("bikes", True), Target("rack", False))


@pytest.mark.parametrize("reply", [None, "", "garbage garbage", "ĠĠ\x00<unk>"])
def test_resolve_falls_back_to_rules(reply):
    result = resolve_targets("How many boats are on the lake?", reply)
    assert result.source == "rules" and result.reply == reply
    assert result.targets == (Target("boats", True), Target("lake", False))
    assert result.question_type == 2


def test_resolve_nothing_named_anywhere():
    for reply in (None, "garbage", "So I need the information about the following objects: none."):
        result = resolve_targets("Is it daytime?", reply)
        assert result.source == "none" and result.targets == () and result.question_type == 1
        assert result.reply == reply


def test_resolve_empty_reply_for_a_question_that_names_objects():
    reply = "So I need the information about the following objects: none."
    default = resolve_targets("What is the color of the car?", reply)
    assert default.source == "rules" and default.targets == (Target("car", False),)
    switch = load_config("llava_onevision", trust_empty_target_reply="true").trust_empty_target_reply
    trusted = resolve_targets("What is the color of the car?", reply, trust_empty_reply=switch)
    assert trusted.source == "none" and trusted.targets == ()
    assert FocusConfig().trust_empty_target_reply is False


def test_target_names_are_clean():
    reply = "So I need the information about the following objects: The Red Car, all the dogs, it."
    result = resolve_targets("q", reply)
    assert [t.name for t in result.targets] == ["Red Car", "dogs"]
    for target in result.targets:
        assert not target.name.lower().startswith(("the ", "a ", "an ", "all "))


@pytest.mark.parametrize("phrase, singular", [
    ("boats", "boat"),
    ("red cars", "red car"),
    ("people sitting on the steps", "person sitting on the steps"),
    ("airplanes near the terminal", "airplane near the terminal"),
    ("cars parked along the street", "car parked along the street"),
    ("benches", "bench"), ("boxes", "box"), ("glasses", "glass"), ("buses", "bus"), ("bus", "bus"),
    ("berries", "berry"), ("movies", "movie"), ("knives", "knife"), ("gloves", "glove"), ("horses", "horse"),
    ("children", "child"), ("Women", "Woman"), ("sheep", "sheep"), ("tennis players", "tennis player"),
    ("flag", "flag"),
])
def test_type2_targets_in_the_singular(phrase, singular):
    # "Is there a boats in the image?" is not English; the existence prompt asks about one boat
    assert singular_target(phrase) == singular


# ---- why targets are missing or left out (TargetSet.notes) ----------------------------------

def test_a_reply_cut_at_its_token_limit_leaves_its_unfinished_last_object_out():
    reply = "So I need the information about the following objects: red car and blue circl"
    cut = resolve_targets("Is the red car left of the blue circle?", reply, reply_cut=True)
    assert cut.source == "icl" and cut.targets == (Target("red car", False),)
    assert cut.notes == ("the target reply stopped at its token limit (target_max_new_tokens) inside its list of "
                         "objects: the last one, 'blue circl', may be cut short and is left out",)
    whole = resolve_targets("Is the red car left of the blue circle?", reply)  # stopped at the end of its line
    assert [t.name for t in whole.targets] == ["red car", "blue circl"] and whole.notes == ()
    ended = resolve_targets("q", reply + ".", reply_cut=True)  # the sentence ended before the limit
    assert [t.name for t in ended.targets] == ["red car", "blue circl"] and ended.notes == ()


def test_when_the_only_object_is_cut_the_rules_answer_and_the_notes_say_why():
    reply = "So I need the information about the following objects: red circl"
    result = resolve_targets("What is the color of the red circle?", reply, reply_cut=True)
    assert result.source == "rules" and result.targets == (Target("red circle", False),)
    assert len(result.notes) == 1 and "'red circl', may be cut short" in result.notes[0]


def test_over_long_phrases_and_missing_targets_are_explained():
    phrase = "a very long winding description of many many things at once"
    result = resolve_targets("q", f"So I need the information about the following objects: cup and {phrase}.")
    assert result.targets == (Target("cup", False),)
    assert result.notes == (f"left out of the reply's objects, longer than 8 words: {phrase[:60]!r}",)
    garbage = resolve_targets("What is the color of the car?", "garbage")
    assert garbage.source == "rules" and garbage.notes == (
        "the target reply has no sentence 'So I need the information about the following objects:'",)
    assert resolve_targets("Is it daytime?", None).notes == ("the rule fallback finds no object in the question",)


@pytest.mark.parametrize("question", ["\u8d64\u3044\u5186\u306f\u4f55\u8272\u3067\u3059\u304b\uff1f",
                                      "Quelle est la couleur du cercle rouge pr\xe8s de la fen\xeatre ?"])
def test_a_non_english_question_without_targets_says_the_rules_read_english_only(question):
    result = resolve_targets(question, "So I need the information about the following objects: none.")
    assert result.source == "none" and result.targets == ()
    assert result.notes == ("the target reply names no object",
                            "the rule fallback finds no object in the question (it reads English only)")
