"""Distillation from teacher scores: a small student ranker learns the teacher's softmax over each query.

``ListwiseLoss(target="score")`` takes the teacher's raw scores as labels: q = softmax(phi(teacher))
per query, and the student minimises KL(q || softmax(phi(student))). The student sees fewer features
and shallower trees than the teacher had.
"""

import numpy as np

import selboost
from selboost.metrics import ndcg

rng = np.random.default_rng(2)
sizes = rng.integers(10, 40, size=150)
X = rng.normal(size=(sizes.sum(), 10))
relevance = np.clip(np.round(X[:, 0] + 0.7 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=len(X)) + 1), 0, 4)

teacher = selboost.SelectiveRanker(n_estimators=100, learning_rate=0.1, max_depth=6, n_jobs=1)
teacher.fit(X, relevance, group=sizes)
teacher_scores = teacher.predict(X)

student = selboost.SelectiveRanker(selboost.ListwiseLoss(target="score"), engine="lightgbm",
                                   n_estimators=100, learning_rate=0.1, num_leaves=7, n_jobs=1)
student.fit(X[:, :6], teacher_scores, group=sizes)
student_scores = student.predict(X[:, :6])

agreement = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(np.split(teacher_scores, np.cumsum(sizes)[:-1]),
                                                             np.split(student_scores, np.cumsum(sizes)[:-1]))])
print(f"teacher NDCG@10 {ndcg(relevance, teacher_scores, sizes, k=10):.4f}")
print(f"student NDCG@10 {ndcg(relevance, student_scores, sizes, k=10):.4f}")
print(f"mean per-query correlation student vs teacher {agreement:.4f}")
