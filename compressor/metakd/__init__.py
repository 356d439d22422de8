"""Meta-KD (Pan et al., ACL 2021, "Meta-KD: A Meta Knowledge Distillation Framework for
Language Model Compression across Domains"): one meta-teacher trained on K domains of a
task, then distilled into one student per target domain.

`data.py` reads domains and splits them, `prototypes.py` scores how typical each example is
(eq. 1) and how much the teacher's knowledge of it is worth (the domain-expertise weight),
`objectives.py` holds the meta-teacher loss (eqs. 2-3) and the meta-distillation objective,
and `run.py` chains them in a run folder. The teacher and the student stay plain HF models;
the domain modules are saved beside them.
"""
