"""The 15 text-classification tasks of the CL benchmarks (docs/benchmarks.md §2-§4) and TRACE as data.

For each task: its label strings (targets are generated text), the seed-style instruction, where
it lives in O-LoRA's ``CL_Benchmark`` directory, and how to build the same records from the
Hugging Face hub (dataset id, splits, a text format over the dataset's fields, label ids -> label
strings). Record texts follow O-LoRA's pre-formatted ``sentence`` style, so both sources give the
same prompt for the same example, except where a hub copy lacks a field O-LoRA's file has: AG
News and Amazon have no separate title there (no ``Title:`` line).
"""

from __future__ import annotations

from dataclasses import dataclass

TOPIC = "What is the topic of the following paragraph?"
SENTIMENT = "What is the sentiment of the following paragraph?"
# O-LoRA's instruction file quotes with double quotes; the seed template keeps single ones
NLI = 'What is the logical relationship between the "sentence 1" and the "sentence 2"?'
NLI_SEED = NLI.replace('"', "'")
QQP = 'Whether the "first sentence" and the "second sentence" have the same meaning?'


@dataclass(frozen=True)
class HubSource:
    """One task on the hub: ``load_dataset(path, name)``, its splits and fields."""

    path: str
    name: str | None
    train_split: str
    test_split: str
    text: str  # str.format template over the dataset's fields
    label_field: str
    labels: tuple[str, ...]  # label id i -> labels[i]


@dataclass(frozen=True)
class Task:
    name: str
    category: str  # O-LoRA's task category (first line of its prompt)
    olora_path: str  # directory under CL_Benchmark
    labels: tuple[str, ...]
    instruction: str | None  # O-LoRA's question (its prompt adds the rest); None: COPA has none
    seed_instruction: str
    hub: HubSource
    olora_labels: tuple[str, ...] | None = None  # labels.json's order where it differs from labels


def _glue_family(name, text, labels, test_split="validation", suite="glue", field="label"):
    return HubSource(f"nyu-mll/{suite}" if suite == "glue" else f"aps/{suite}", name, "train",
                     test_split, text, field, labels)


_PAIR = "sentence 1: {premise}\nsentence 2: {hypothesis}"
_SENTIMENT5 = ("very negative", "negative", "neutral", "positive", "very positive")
_DBPEDIA = ("Company", "Educational Institution", "Artist", "Athlete", "Office Holder",
            "Mean of Transportation", "Building", "Natural Place", "Village", "Animal", "Plant",
            "Album", "Film", "Written Work")
_YAHOO = ("Society & Culture", "Science & Mathematics", "Health", "Education & Reference",
          "Computers & Internet", "Sports", "Business & Finance", "Entertainment & Music",
          "Family & Relationships", "Politics & Government")
_TRUE_FALSE = ("False", "True")  # label id 0 = False, 1 = True in GLUE / SuperGLUE


def _task(name, category, olora_path, labels, instruction, hub, seed_instruction=None,
          olora_labels=None):
    return Task(name, category, olora_path, tuple(labels), instruction,
                seed_instruction or instruction, hub, tuple(olora_labels) if olora_labels else None)


TASKS: dict[str, Task] = {task.name: task for task in [
    _task("agnews", "TC", "TC/agnews", ("World", "Sports", "Business", "Science or Technology"),
          TOPIC, HubSource("fancyzhx/ag_news", None, "train", "test", "Text: {text}\n", "label",
                           ("World", "Sports", "Business", "Science or Technology"))),
    _task("dbpedia", "TC", "TC/dbpedia", _DBPEDIA, TOPIC,
          HubSource("fancyzhx/dbpedia_14", None, "train", "test", "Title: {title}\nText: {content}\n",
                    "label", _DBPEDIA)),
    _task("yahoo", "TC", "TC/yahoo", _YAHOO, TOPIC,
          HubSource("community-datasets/yahoo_answers_topics", None, "train", "test",
                    "Title: {question_title}\nQuestion: {question_content}\nAnswer: {best_answer}\n",
                    "topic", _YAHOO)),
    _task("amazon", "SC", "SC/amazon", _SENTIMENT5, SENTIMENT,
          HubSource("SetFit/amazon_reviews_multi_en", None, "train", "test", "Text: {text}\n",
                    "label", _SENTIMENT5)),
    _task("yelp", "SC", "SC/yelp", _SENTIMENT5, SENTIMENT,
          HubSource("Yelp/yelp_review_full", None, "train", "test", "Text: {text}\n", "label",
                    _SENTIMENT5)),
    _task("sst-2", "SC", "SC/SST-2", ("Good", "Bad"), SENTIMENT,
          _glue_family("sst2", "Text: {sentence}", ("Bad", "Good"))),
    _task("imdb", "SC", "SC/IMDB", ("Good", "Bad"), SENTIMENT,
          HubSource("stanfordnlp/imdb", None, "train", "test", "{text}", "label", ("Bad", "Good"))),
    _task("mnli", "NLI", "NLI/MNLI", ("entailment", "neutral", "contradiction"), NLI,
          _glue_family("mnli", _PAIR, ("entailment", "neutral", "contradiction"),
                test_split="validation_matched"),
          seed_instruction=NLI_SEED, olora_labels=("neutral", "entailment", "contradiction")),
    _task("rte", "NLI", "NLI/RTE", ("entailment", "contradiction"), NLI,
          _glue_family("rte", "sentence 1: {sentence1}\nsentence 2: {sentence2}",
                ("entailment", "contradiction")),
          seed_instruction=NLI_SEED, olora_labels=("contradiction", "entailment")),
    _task("cb", "NLI", "NLI/CB", ("entailment", "contradiction", "neutral"), NLI,
          _glue_family("cb", _PAIR, ("entailment", "contradiction", "neutral"), suite="super_glue"),
          seed_instruction=NLI_SEED),
    _task("qqp", "QQP", "QQP/QQP", ("True", "False"), QQP,
          _glue_family("qqp", "first sentence: {question1}\nsecond sentence: {question2}", _TRUE_FALSE),
          seed_instruction=QQP.replace('"', "'")),
    _task("wic", "WiC", "WiC/WiC", ("True", "False"),
          "Given a word and two sentences, whether the word is used with the same sense in both "
          "sentence?",
          _glue_family("wic", "word: {word}\n{sentence1}\n{sentence2}", _TRUE_FALSE, suite="super_glue")),
    _task("copa", "COPA", "COPA/COPA", ("A", "B"), None,
          _glue_family("copa", 'Which sentence is the {question} of "{premise}"? Choose one between A '
                        "and B.\nA: {choice1}\nB: {choice2}", ("A", "B"), suite="super_glue"),
          seed_instruction="Which choice best explains or follows from the given premise?"),
    _task("boolqa", "BoolQA", "BoolQA/BoolQA", ("True", "False"),
          "According to the following passage, is the question true or false?",
          _glue_family("boolq", "passage: {passage}\nquestion: {question}", _TRUE_FALSE,
                suite="super_glue")),
    _task("multirc", "MultiRC", "MultiRC/MultiRC", ("True", "False"),
          "According to the following passage and question, is the candidate answer true or "
          "false?",
          _glue_family("multirc", "paragraph: {paragraph}\nquestion: {question}\ncandidate answer: "
                        "{answer}", _TRUE_FALSE, suite="super_glue"),
          olora_labels=("False", "True")),
]}

# The papers' task orders (docs/benchmarks.md §2); configs copy them, this is the reference.
ORDERS: dict[int, list[str]] = {
    1: ["dbpedia", "amazon", "yahoo", "agnews"],
    2: ["dbpedia", "amazon", "agnews", "yahoo"],
    3: ["yahoo", "amazon", "agnews", "dbpedia"],
    4: ["mnli", "cb", "wic", "copa", "qqp", "boolqa", "rte", "imdb", "yelp", "amazon", "sst-2",
        "dbpedia", "agnews", "multirc", "yahoo"],
    5: ["multirc", "boolqa", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst-2", "dbpedia",
        "agnews", "yelp", "amazon", "yahoo"],
    6: ["yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst-2", "dbpedia", "agnews",
        "yahoo", "multirc", "boolqa", "wic"],
}


def task(name: str) -> Task:
    """The task called ``name``, or an error listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


# TRACE (docs/benchmarks.md §4): eight generation tasks, each a folder of ``{"prompt", "answer"}``
# records; the metric that scores it (asvd.evaluation.scoring) and its place in TRACE's order.
TRACE_METRICS: dict[str, str] = {
    "C-STANCE": "exact_match",
    "FOMC": "exact_match",
    "MeetingBank": "rouge_l",
    "Py150": "edit_similarity",
    "ScienceQA": "choice_accuracy",
    "NumGLUE-cm": "exact_match",
    "NumGLUE-ds": "exact_match",
    "20Minuten": "sari",
}
TRACE_ORDER: list[str] = list(TRACE_METRICS)


def trace_metric(name: str) -> str:
    """The metric of TRACE task ``name``, or an error listing TRACE's tasks."""
    if name not in TRACE_METRICS:
        raise ValueError(f"unknown TRACE task {name!r}; TRACE's tasks: {TRACE_ORDER}")
    return TRACE_METRICS[name]
