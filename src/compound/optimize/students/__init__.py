"""Students: cheap local classifiers taught from a model's (or gold) labels, and the certificate they carry.

``linear`` is the one mechanism (a softmax-linear head, cross-fitted so that the heads certified are the
heads deployed); ``embedding`` puts it over sentence embeddings (``ngrams`` adds the texts' character
n-grams), ``tabular`` over a row's own cells. A
cascade (``compound.routing``) runs a student as its first stage and answers with it only where the
certificate holds. ``encoder`` fine-tunes the sentence encoder itself on the teacher's labels (``auto``'s
second stage), and ``active`` chooses the rows the teacher labels next (``optimize.staged``).
"""
