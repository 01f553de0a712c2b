"""Stage 5: which objects a question is about, and its type (Sec. 3.3, A.5).

The model is asked text-only with in-context examples in ZoomEye's format (the examples are
our own): each example is "Question: {q}" + "If you want to answer the question, which
objects' information do you need?" + an answer ending "So I need the information about the
following objects: {a} and {b}." A target written "all X" makes the question type 2 (many
instances of X, e.g. counting); otherwise it is type 1. An answer ending "...objects: none."
says that no specific object is needed: the question is answered on the full image.

Choices where the paper is silent:
- The reply is parsed from its LAST such sentence, up to the end of that line or sentence, so
  a model that goes on inventing further questions does not add targets. Pronouns, words
  that name the image itself ("image", "picture", "scene"), "none", and phrases of more than
  MAX_TARGET_WORDS words (runaway text from a broken model) are not targets.
- A reply without the sentence (empty, garbage) falls back to `rule_based_targets`.
- A reply whose sentence names no object (parsed to []) is honoured only when the rules find
  no object in the question either; otherwise the rule targets are used. The benchmarks are
  fine-grained: their questions name the object whose details matter, and answering on the
  full image forgoes the search. `resolve_targets(..., trust_empty_reply=True)` honours the
  model's "none" always.
- The question type comes from the targets alone ("all X" anywhere => type 2), as in ZoomEye.
- A reply that stopped at its token limit (target_max_new_tokens) inside its list of objects
  leaves its last object out: it may be cut short ("red circl").
- Nothing is left out silently: `TargetSet.notes` says why the reply's targets were not used,
  which were left out, and why there is no target (the rule fallback reads English only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from focus_eval.config import DATASETS

MAX_TARGET_WORDS = 8

NEED_SENTENCE = "So I need the information about the following objects:"
_QUESTION_LINE = "If you want to answer the question, which objects' information do you need?"


@dataclass(frozen=True)
class Target:
    name: str  # e.g. "red car": never a pronoun, no leading article, no "all "
    all_instances: bool  # the reply said "all X": a type-2 target


@dataclass(frozen=True)
class TargetSet:
    targets: tuple[Target, ...]
    question_type: int  # 1 or 2 ("all X" anywhere => 2)
    source: str  # "icl" (parsed reply), "rules" (fallback), "none" (question names nothing)
    reply: str | None  # the raw model reply, kept for the trace
    notes: tuple[str, ...] = ()  # why targets are missing or were left out (module docstring)


# ---- benchmark prompts -> question ---------------------------------------------------------

# Answer-format instructions of lmms-eval's vstar_bench, hrbench and mmerealworld tasks and
# common variants; removed wherever they occur.
_INSTRUCTIONS = re.compile("|".join([
    r"answer with the option'?s letter from the given choices directly\.?",
    r"answer the option letter directly\.?",
    r"(?:please\s+)?answer (?:the question )?(?:with|using) (?:a single word or phrase|the (?:correct )?option(?:'s)? letter)[^\n]*",
    r"select the best answer to the above multiple-choice question based on the image\.?",
    r"respond with only the letter \([^)\n]*\) of the correct option\.?",
    r"the choices are listed below\s*:?",
    r"the best answer is\s*:?",
    r"\b(?:options|choices)\s*:",
]), re.IGNORECASE)

# An option marker: "(A)" at a line start or after whitespace, or "A." / "A)" at a line start.
_OPTION_MARKER = re.compile(r"(?:^|(?<=\s))\(([A-Z])\)[ \t]*|^[ \t]*([A-Z])[.)][ \t]+", re.MULTILINE)


def question_from_prompt(prompt: str) -> str:
    """The question of a benchmark prompt: answer options and answer instructions removed.

    Handles V*Bench's inline "(A) .. (B) ..", HRBench's "A. ..\\nB. ..\\n" lines and
    MME-RealWorld's "(A) .." lines; the question is the text before the options.
    """
    text = _INSTRUCTIONS.sub(" ", prompt.replace("<image>", " "))
    markers = _option_run(text)
    if markers:
        text = text[:markers[0].start()]
    return " ".join(text.split())


def options_from_prompt(prompt: str) -> list[tuple[str, str]]:
    """[("A", "red"), ("B", "blue"), ...]: the first run of options lettered A, B, C, ..."""
    text = _INSTRUCTIONS.sub(" ", prompt)
    markers = _option_run(text)
    options = []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        body = text[marker.end():end].split("\n", 1)[0]
        options.append((_letter(marker), body.strip().rstrip(";,.").strip()))
    return options


def _option_run(text: str) -> list[re.Match]:
    """Markers of the first run A, B, ... of at least two consecutive letters."""
    markers = list(_OPTION_MARKER.finditer(text))
    for start, marker in enumerate(markers):
        if _letter(marker) != "A":
            continue
        run = [marker]
        for following in markers[start + 1:]:
            if _letter(following) != chr(ord(_letter(run[-1])) + 1):
                break
            run.append(following)
        if len(run) >= 2:
            return run
    return []


def _letter(marker: re.Match) -> str:
    return marker.group(1) or marker.group(2)


# ---- in-context prompt ---------------------------------------------------------------------

# (question, short reasoning, targets); [] = no specific object, answer on the full image.
_Example = tuple[str, str, list[str]]

_GENERIC: list[_Example] = [
    ("What is the color of the cup on the table?",
     "The color belongs to the cup.", ["cup on the table"]),
    ("Is the bicycle on the left or right side of the bus?",
     "The answer depends on where both of them are.", ["bicycle", "bus"]),
    ("How many boats are on the lake?",
     "Counting needs every boat, not just one.", ["all boats"]),
    ("What is written on the blue sign?",
     "The text is on the blue sign.", ["blue sign"]),
    ("Is this photo taken indoors or outdoors?",
     "This is about the whole scene, not one object.", []),
]

_VSTAR: list[_Example] = [
    ("What is the material of the bench?",
     "The material is a property of the bench.", ["bench"]),
    ("What is the color of the woman's umbrella?",
     "I have to find the umbrella the woman holds.", ["woman's umbrella"]),
    ("Is the traffic cone on the left or right side of the white van?",
     "I need the positions of both objects.", ["traffic cone", "white van"]),
    ("How many flags are on the roof?",
     "Counting needs every flag.", ["all flags"]),
    ("Was this picture taken during the day or at night?",
     "The lighting of the whole picture tells this.", []),
]

_HRBENCH: list[_Example] = [
    ("What is the number on the jersey of the player holding the ball?",
     "The number is on that player's jersey.", ["player holding the ball"]),
    ("What does the text on the shop sign above the red door say?",
     "The text is on that sign.", ["shop sign above the red door"]),
    ("Which is closer to the fountain, the statue or the lamp post?",
     "I have to compare three objects.", ["fountain", "statue", "lamp post"]),
    ("How many people are sitting on the steps?",
     "Counting needs every person on the steps.", ["all people sitting on the steps"]),
    ("What is the weather like in the picture?",
     "The weather shows in the whole picture.", []),
]

_MME_REALWORLD: list[_Example] = [
    ("What is the price written on the menu board next to the coffee machine?",
     "The price is written on the menu board.", ["menu board"]),
    ("How many airplanes are parked near the terminal in this aerial image?",
     "Counting needs every airplane.", ["all airplanes"]),
    ("What is the color of the tennis court next to the parking lot?",
     "The color belongs to the tennis court.", ["tennis court"]),
    ("What is the state of the traffic light ahead of the ego car?",
     "I have to find the traffic light in front.", ["traffic light"]),
    ("Is the man in the white shirt closer to the gate or to the parked truck?",
     "I have to compare where the three objects are.", ["man in the white shirt", "gate", "parked truck"]),
    ("Which kind of area does this remote sensing image mainly show?",
     "This is about the whole image, not one object.", []),
]

ICL_EXAMPLES: dict[str | None, list[_Example]] = {
    None: _GENERIC,
    "vstar": _VSTAR,
    "hrbench4k": _HRBENCH,
    "hrbench8k": _HRBENCH,
    "mme_realworld_lite": _MME_REALWORLD,
}

_ICL_INTRO = "Name the objects in the image whose information is needed to answer each question."


def icl_prompt(question: str, dataset: str | None) -> str:
    """One text-only user message: the examples of `dataset` (generic for None), then `question`."""
    return icl_prefix(dataset) + f"Question: {question.strip()}\n{_QUESTION_LINE}\nAnswer:"


def icl_prefix(dataset: str | None) -> str:
    """The start of `icl_prompt` that every question of `dataset` shares, for an adapter to keep
    its KV cache across questions: the examples, up to the blank line before the question's block.
    It ends before "Question:", not before the question, so that the same text always follows
    it and its tokens are the same whatever the question (a question's first word can merge with
    the space before it into one token)."""
    if dataset not in ICL_EXAMPLES:
        raise ValueError(f"no in-context examples for dataset {dataset!r}; known: {DATASETS} or None")
    blocks = [_ICL_INTRO]
    for example_question, reasoning, targets in ICL_EXAMPLES[dataset]:
        answer = f"{reasoning} {NEED_SENTENCE} {_join_targets(targets)}."
        blocks.append(f"Question: {example_question}\n{_QUESTION_LINE}\nAnswer: {answer}")
    return "\n\n".join(blocks) + "\n\n"


def _join_targets(targets: list[str]) -> str:
    if not targets:
        return "none"
    if len(targets) == 1:
        return targets[0]
    return ", ".join(targets[:-1]) + " and " + targets[-1]


# ---- reply parsing -------------------------------------------------------------------------

_NEED = re.compile(r"so\s+i\s+need\s+(?:the\s+)?information\s+about\s+the\s+following\s+objects?\s*:?",
                   re.IGNORECASE)
_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s*;\s*|\s+and\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_QUOTES_AND_PUNCTUATION = " \t\"'`“”‘’.,;:!?()[]{}*"
_LEADING_DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "some", "any"}
_NOT_OBJECTS = {
    # pronouns and words that stand for nothing in particular
    "it", "its", "them", "they", "their", "this", "that", "these", "those", "he", "she", "him",
    "her", "his", "we", "us", "i", "me", "you", "one", "ones", "something", "anything",
    "everything", "nothing", "none", "no object", "no objects", "n/a", "na", "null", "object",
    "objects", "thing", "things", "question", "answer", "information",
    # the image itself
    "image", "picture", "photo", "photograph", "scene", "view", "frame", "screenshot",
    "image as a whole", "picture as a whole",
}
_WHOLE = {"whole", "entire", "full", "overall"}


def parse_reply(reply: str) -> list[str] | None:
    """Targets of the reply's last "So I need the information about the following objects:"
    sentence, "all X" kept for type-2 targets; [] when it names none; None without it."""
    listed = _listed_objects(reply)
    return None if listed is None else _targets_of(listed[0])


def _listed_objects(reply: str | None) -> tuple[list[str], bool] | None:
    """(raw phrases of the reply's last "...following objects:" sentence, whether that sentence
    ends within the reply); None without the sentence."""
    matches = list(_NEED.finditer(reply or ""))
    if not matches:
        return None
    tail, newline, _ = reply[matches[-1].end():].lstrip().partition("\n")
    end = _SENTENCE_END.search(tail)
    if end:
        tail = tail[:end.start()]
    return _SPLIT.split(tail), bool(end or newline)


def _targets_of(phrases: list[str]) -> list[str]:
    return _unique(target for target in map(normalize_target, phrases) if target)


def normalize_target(phrase: str) -> str | None:
    """A target phrase without quotes, punctuation and leading articles, "all X" kept as
    "all X"; None for a pronoun, the image itself, "none", or an over-long phrase."""
    words = [word.strip(_QUOTES_AND_PUNCTUATION) for word in phrase.split()]
    words = [word for word in words if word]
    all_instances = bool(words) and words[0].lower() == "all"
    if all_instances:
        words = words[1:]
        if words and words[0].lower() == "of":
            words = words[1:]
    while words and words[0].lower() in _LEADING_DETERMINERS:
        words = words[1:]
    if not words or len(words) > MAX_TARGET_WORDS or not any(c.isalpha() for c in "".join(words)):
        return None
    core = " ".join(word for word in (w.lower() for w in words) if word not in _WHOLE)
    if not core or core in _NOT_OBJECTS:
        return None
    return ("all " if all_instances else "") + " ".join(words)


def _unique(targets) -> list[str]:
    seen: dict[str, str] = {}
    for target in targets:
        seen.setdefault(target.lower(), target)
    return list(seen.values())


# ---- rule-based fallback -------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*['’]?|[^\sA-Za-z0-9]")
_OPENERS = {"the", "a", "an", "this", "that", "these", "those", "each", "every", "any", "some",
            "its", "his", "her", "their", "what", "which", "there"}
_PREPOSITIONS = {
    "of", "in", "on", "at", "to", "from", "with", "by", "near", "next", "behind", "under",
    "underneath", "beneath", "above", "below", "over", "between", "beside", "besides", "inside",
    "outside", "around", "across", "along", "against", "among", "into", "onto", "toward",
    "towards", "for", "about", "than", "like", "through", "within", "without", "up", "down",
    "off", "out", "upon", "beyond", "via", "during", "after", "before", "per", "as",
}
_CONJUNCTIONS = {"and", "or", "but", "nor", "so", "yet", "if", "when", "where", "while", "whereas",
                 "who", "whose", "whom", "how", "why", "whether", "then", "not", "also"}
_VERBS = {
    "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "has", "have",
    "had", "can", "could", "will", "would", "should", "shall", "may", "might", "must", "say",
    "says", "said", "saying", "read", "reads", "written", "write", "writes", "show", "shows",
    "shown", "showing", "display", "displays", "displayed", "hold", "holds", "holding", "held",
    "wear", "wears", "wearing", "worn", "sit", "sits", "sitting", "seated", "stand", "stands",
    "standing", "lie", "lies", "lying", "hang", "hangs", "hanging", "located", "placed",
    "parked", "point", "points", "pointing", "facing", "move", "moves", "moving", "go", "goes",
    "going", "drive", "drives", "driving", "walk", "walks", "walking", "carry", "carries",
    "carrying", "use", "uses", "using", "play", "plays", "playing", "look", "looks", "looking",
    "appear", "appears", "seem", "seems", "belong", "belongs", "contain", "contains", "turn",
    "turning", "wait", "waiting", "printed", "painted", "made", "mounted", "attached", "covered",
    "filled", "visible", "closest", "nearest", "farthest", "furthest", "most", "least", "more",
    "less", "larger", "smaller", "bigger", "taller", "higher", "there", "here", "currently",
    "directly", "exactly", "approximately", "mainly", "taken", "see", "seen",
}
_STOPS = _PREPOSITIONS | _CONJUNCTIONS | _VERBS
# Adjectives that can precede the head noun; after it they end the phrase ("the bucket black or green").
_MODIFIERS = {
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
    "white", "gray", "grey", "silver", "gold", "golden", "beige",
    "small", "large", "big", "little", "tall", "short", "long", "tiny", "huge", "wooden",
    "metal", "metallic", "plastic", "glass", "stone", "brick", "leather", "paper", "left",
    "right", "top", "bottom", "upper", "lower", "front", "back", "rear", "middle", "central",
    "leftmost", "rightmost", "topmost",
}
_SHADES = {"light", "dark", "pale", "bright"}  # modifiers only before another ("light blue"), not in "traffic light"
# Head nouns that name a property, a place in the image, or a time, not an object.
_ATTRIBUTES = {
    "color", "colour", "colors", "colours", "material", "shape", "size", "number", "numbers",
    "count", "total", "amount", "quantity", "position", "location", "direction", "orientation",
    "distance", "text", "word", "words", "letter", "letters", "name", "type", "kind", "sort",
    "brand", "style", "pattern", "time", "weather", "price", "status", "state", "condition",
    "purpose", "function", "height", "width", "length", "age", "gender", "category", "value",
    "content", "contents", "title", "relationship", "relation", "difference", "season",
    "activity", "expression", "way", "atmosphere", "mood", "perspective", "lighting",
}
_PLACES = {"left", "right", "top", "bottom", "middle", "center", "centre", "front", "back", "rear",
           "side", "sides", "corner", "corners", "edge", "part", "area", "region", "half",
           "foreground", "background", "end"}
_TIMES = {"day", "daytime", "night", "nighttime", "morning", "afternoon", "evening", "noon",
          "sunset", "sunrise", "dawn", "dusk", "winter", "spring", "summer", "autumn", "fall"}
_COUNTING_ATTRIBUTES = {"number", "numbers", "count", "total", "amount", "quantity"}
_MAX_PHRASE_WORDS = 6


def rule_based_targets(question: str) -> list[str]:
    """Targets from the question alone, "all X" for counting questions.

    Noun phrases after a determiner ("the", "a", "which", "there", ...) up to a preposition,
    verb, conjunction or punctuation; "How many X" and "the number of X" give "all X";
    "the color of the X" gives "X" (phrases headed by a property, a place in the image or a
    time are dropped). Only when this finds nothing, phrases after prepositions are tried
    ("... near buildings"). [] when the question names no object.
    """
    tokens = _TOKEN.findall(question)
    found = _scan(tokens, openers=_OPENERS)
    if not found:
        found = _scan(tokens, openers=_OPENERS | _PREPOSITIONS)
    return _unique(found)


def _scan(tokens: list[str], openers: set[str]) -> list[str]:
    lowered = [token.lower() for token in tokens]
    found: list[str] = []
    i = 0
    while i < len(tokens):
        if lowered[i] == "how" and i + 1 < len(tokens) and lowered[i + 1] == "many":
            i += 2
            if i < len(tokens) and lowered[i] == "of":  # "how many of the cars"
                i += 1 + (i + 1 < len(tokens) and lowered[i + 1] in _OPENERS)
            words, i = _phrase(tokens, i)
            _keep(found, words, all_instances=True)
            continue
        if lowered[i] not in openers:
            i += 1
            continue
        words, i = _phrase(tokens, i + 1)
        head = words[-1].lower() if words else ""
        if head in _ATTRIBUTES and i + 1 < len(tokens) and lowered[i] == "of" and lowered[i + 1] not in _OPENERS:
            # "the number of cars", "what kind of animal": the object follows without a determiner
            words, i = _phrase(tokens, i + 1)
            _keep(found, words, all_instances=head in _COUNTING_ATTRIBUTES)
            continue
        _keep(found, words, all_instances=False)
    return found


def _phrase(tokens: list[str], start: int) -> tuple[list[str], int]:
    """Words of the noun phrase starting at `start`, and the index after it."""
    words: list[str] = []
    i = start
    while i < len(tokens) and len(words) < _MAX_PHRASE_WORDS:
        low = tokens[i].lower()
        if not tokens[i][0].isalnum() or low in _STOPS or low in _OPENERS:
            break
        if words and _is_modifier(tokens, i) and not _is_modifier(tokens, i - 1):
            break
        words.append(tokens[i])
        i += 1
    return words, i


def _is_modifier(tokens: list[str], i: int) -> bool:
    low = tokens[i].lower()
    if low in _SHADES:
        return i + 1 < len(tokens) and tokens[i + 1].lower() in _MODIFIERS
    return low in _MODIFIERS


def _keep(found: list[str], words: list[str], all_instances: bool) -> None:
    if not words:
        return
    head = words[-1].lower().rstrip("'’")
    if head.endswith(("'s", "’s")):
        head = head[:-2]
    if head in _ATTRIBUTES or head in _PLACES or head in _TIMES:
        return
    target = normalize_target(("all " if all_instances else "") + " ".join(words))
    if target:
        found.append(target)


# ---- resolution ----------------------------------------------------------------------------

def resolve_targets(question: str, reply: str | None, *, trust_empty_reply: bool = False,
                    reply_cut: bool = False) -> TargetSet:
    """The targets of `question`: the parsed reply ("icl"), else the rules ("rules"), else
    nothing ("none": answer on the full image). See the module docstring for a reply that
    names no object; reply=None (rule-based extraction) goes straight to the rules.
    reply_cut: the reply stopped at its token limit, so an unfinished last object is left out."""
    notes: list[str] = []
    listed = _listed_objects(reply) if reply is not None else None
    parsed = None
    if listed is not None:
        phrases, ended = listed
        if reply_cut and not ended and phrases[-1].strip():
            notes.append(f"the target reply stopped at its token limit (target_max_new_tokens) inside its list of "
                         f"objects: the last one, {_shown(phrases[-1])}, may be cut short and is left out")
            phrases = phrases[:-1]
        notes += [f"left out of the reply's objects, longer than {MAX_TARGET_WORDS} words: {_shown(phrase)}"
                  for phrase in phrases if len(phrase.split()) > MAX_TARGET_WORDS]
        parsed = _targets_of(phrases)
    if parsed:
        return _target_set(parsed, "icl", reply, notes)
    if parsed == [] and trust_empty_reply and not notes:
        return _target_set([], "none", reply, ["the target reply names no object"])
    if listed is None and reply is not None:
        notes.append(f"the target reply has no sentence '{NEED_SENTENCE}'")
    elif parsed == [] and not notes:
        notes.append("the target reply names no object")
    rules = rule_based_targets(question)
    if rules:
        return _target_set(rules, "rules", reply, notes)
    english_only = " (it reads English only)" if any(ch.isalpha() and not ch.isascii() for ch in question) else ""
    notes.append(f"the rule fallback finds no object in the question{english_only}")
    return _target_set([], "none", reply, notes)


def _shown(phrase: str, limit: int = 60) -> str:
    phrase = " ".join(phrase.split())
    return repr(phrase if len(phrase) <= limit else phrase[:limit] + "...")


def _target_set(phrases: list[str], source: str, reply: str | None, notes: list[str]) -> TargetSet:
    targets = tuple(
        Target(name=phrase[len("all "):], all_instances=True) if phrase.lower().startswith("all ")
        else Target(name=phrase, all_instances=False)
        for phrase in phrases)
    question_type = 2 if any(target.all_instances for target in targets) else 1
    return TargetSet(targets=targets, question_type=question_type, source=source, reply=reply, notes=tuple(notes))


# ---- type-2 existence checks ---------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "oxen": "ox", "knives": "knife", "wives": "wife", "lives": "life",
    "leaves": "leaf", "shelves": "shelf", "wolves": "wolf", "halves": "half", "calves": "calf", "loaves": "loaf",
    "thieves": "thief", "scarves": "scarf", "buses": "bus", "gases": "gas", "tomatoes": "tomato",
    "potatoes": "potato", "heroes": "hero", "cacti": "cactus", "dice": "die",
}
_PLURAL_LIKE_SINGULARS = ("ss", "us", "is", "ics", "series", "species", "news")
_IE_NOUNS = {"movies", "cookies", "pies", "ties", "lies", "zombies", "rookies", "selfies", "brownies", "hoodies",
             "goalies", "calories", "smoothies", "veggies"}


def singular_target(phrase: str) -> str:
    """`phrase` with its head noun in the singular, for the existence prompt of a type-2
    target: "all boats" becomes the target "boats", and "Is there a boats in the image?" is not
    English. The head is the last word before the first preposition, verb or conjunction
    ("people sitting on the steps" -> "person sitting on the steps"). Irregular plurals come
    from a table; regular ones lose "ies" -> "y", "sses"/"xes"/"ches"/"shes"/"zzes" -> without
    "es", else the final "s"; words that end like plurals but are not ("glass", "bus",
    "tennis") are kept. ZoomEye drops a final "s" for the same reason."""
    words = phrase.split()
    head = 0
    for index, word in enumerate(words):
        if index and word.lower() in _STOPS:
            break
        head = index
    words[head] = _singular(words[head])
    return " ".join(words)


def _singular(word: str) -> str:
    low = word.lower()
    if low in _IRREGULAR_PLURALS:
        return word[0] + _IRREGULAR_PLURALS[low][1:] if word[:1].isupper() else _IRREGULAR_PLURALS[low]
    if low.endswith(_PLURAL_LIKE_SINGULARS) or not low.endswith("s") or len(low) < 3:
        return word
    if low.endswith("ies") and low not in _IE_NOUNS and len(low) > 4:
        return word[:-3] + "y"
    if low.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    return word[:-1]
