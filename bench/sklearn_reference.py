#!/usr/bin/env python3
"""The reference we measure `train` against: the original example's exact pipeline.

CountVectorizer() + TfidfTransformer() + SGDClassifier(loss="log_loss"), default settings, on the
4 rec.* groups of 20news-bydate.tar.gz read as Latin-1, trained on the train split and scored on the
test split. Prints one JSON line per seed and a summary; `--model PATH` also pickles the fitted
pipeline so the timed run does the same work as `train` (read, fit, evaluate, write).

    python3 bench/sklearn_reference.py path/to/20news-bydate.tar.gz [--seeds 0 1 2 3 4] [--model out.pkl]
"""
import argparse, json, pickle, statistics, sys, tarfile, time

T0 = time.perf_counter()
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

CATEGORIES = ["rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey"]


def read(archive):
    splits = {"train": ([], []), "test": ([], [])}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[1] in CATEGORIES:
                split = "train" if parts[0].endswith("train") else "test"
                text = tar.extractfile(member).read().decode("latin-1")
                splits[split][0].append(text)
                splits[split][1].append(CATEGORIES.index(parts[1]))
    return splits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--model", help="pickle the last fitted pipeline here")
    a = ap.parse_args()
    import_s = time.perf_counter() - T0
    t = time.perf_counter()
    splits = read(a.archive)
    read_s = time.perf_counter() - t
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    results = []
    for seed in a.seeds:
        t = time.perf_counter()
        cv, tf = CountVectorizer(), TfidfTransformer()
        clf = SGDClassifier(loss="log_loss", random_state=seed)
        clf.fit(tf.fit_transform(cv.fit_transform(xtr)), ytr)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = clf.predict(tf.transform(cv.transform(xte)))
        eval_s = time.perf_counter() - t
        r = dict(seed=seed, accuracy=accuracy_score(yte, pred), macro_f1=f1_score(yte, pred, average="macro"),
                 vocabulary=len(cv.vocabulary_), fit_seconds=fit_s, evaluate_seconds=eval_s)
        results.append(r)
        print(json.dumps(r))
    if a.model:
        with open(a.model, "wb") as f:
            pickle.dump((cv, tf, clf, CATEGORIES), f)
    acc = [r["accuracy"] for r in results]
    f1 = [r["macro_f1"] for r in results]
    print(json.dumps(dict(summary=True, train_documents=len(xtr), test_documents=len(xte),
                          accuracy_min=min(acc), accuracy_max=max(acc), accuracy_mean=statistics.mean(acc),
                          macro_f1_mean=statistics.mean(f1), import_seconds=import_s, read_seconds=read_s,
                          total_seconds=time.perf_counter() - T0)))


if __name__ == "__main__":
    sys.exit(main())
