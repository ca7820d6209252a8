"""Word lists for the synthetic word-problem generator (stratos/tasks/math/generator.py).

Kept apart from the generator's logic so the logic reads top to bottom. Nouns are
(plural, singular) pairs; names are short and varied; no pronouns are ever needed because
every sentence names its subject.
"""

from __future__ import annotations

NAMES = (
    "Ava", "Ben", "Carla", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kai", "Lena",
    "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Ximena",
    "Yusuf", "Zoe", "Amir", "Bea", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Joy",
    "Kofi", "Lucia", "Mia", "Noah", "Olga", "Pablo", "Rahul", "Sofia", "Theo", "Yara",
)

ITEMS = (
    ("apples", "apple"), ("oranges", "orange"), ("marbles", "marble"), ("stickers", "sticker"),
    ("pencils", "pencil"), ("cookies", "cookie"), ("cupcakes", "cupcake"), ("books", "book"),
    ("stamps", "stamp"), ("shells", "shell"), ("cards", "card"), ("balloons", "balloon"),
    ("eggs", "egg"), ("toy cars", "toy car"), ("beads", "bead"), ("candies", "candy"),
    ("flowers", "flower"), ("crayons", "crayon"), ("tomatoes", "tomato"), ("muffins", "muffin"),
    ("buttons", "button"), ("rocks", "rock"), ("feathers", "feather"), ("bananas", "banana"),
    ("pens", "pen"), ("notebooks", "notebook"), ("ribbons", "ribbon"), ("blocks", "block"),
    ("lemons", "lemon"), ("socks", "sock"), ("puzzles", "puzzle"), ("kites", "kite"),
    ("plums", "plum"), ("bottles", "bottle"), ("seeds", "seed"), ("comics", "comic"),
)

CONTAINERS = (
    ("boxes", "box"), ("bags", "bag"), ("baskets", "basket"), ("jars", "jar"), ("packs", "pack"),
    ("crates", "crate"), ("trays", "tray"), ("piles", "pile"), ("stacks", "stack"), ("buckets", "bucket"),
)

# Fractions written in words: (word, numerator, denominator).
FRACTIONS = (
    ("half", 1, 2), ("a third", 1, 3), ("a quarter", 1, 4), ("a fifth", 1, 5),
    ("two thirds", 2, 3), ("three quarters", 3, 4),
)
# Number words the verifier may meet in questions, mapped to the values they ground.
WORD_NUMBERS = {
    "half": (2,), "third": (3,), "thirds": (3,), "quarter": (4,), "quarters": (4,), "fifth": (5,),
    "two": (2,), "three": (3,), "twice": (2,), "double": (2,), "triple": (3,),
}

PERCENTS = (10, 20, 25, 50, 75, 40, 60, 30)

SPEND_ON = ("a book", "lunch", "a movie ticket", "a toy", "a shirt", "a gift", "snacks", "bus fare", "a plant",
            "a game", "art supplies", "a hat")
EARN_FROM = ("mowing lawns", "a bake sale", "babysitting", "selling lemonade", "walking dogs", "washing cars",
             "tutoring", "a garage sale", "raking leaves")
GROUPS = (("friends", "friend"), ("cousins", "cousin"), ("classmates", "classmate"), ("teammates", "teammate"),
          ("neighbors", "neighbor"))
GAIN_VERBS = (("buys", "bought"), ("finds", "found"), ("picks", "picked"), ("wins", "won"), ("makes", "made"),
              ("gets", "got"))
LOSE_VERBS = (("gives away", "gave"), ("loses", "lost"), ("sells", "sold"), ("uses", "used"),
              ("trades away", "traded"))
LINKERS = ("Then", "Later", "After that,", "The next day,", "On Monday,", "In the afternoon,", "Next,")
