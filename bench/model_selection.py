#!/usr/bin/env python3
"""How the trainer's defaults were chosen: 5-fold cross-validation on the *training* split only.

Multinomial naive Bayes (the classifier `train` fits with smartcore) over raw counts or tf-idf,
for several `min_df` and `alpha`. The test split is scored too, for information, but the choice is
the best cross-validation accuracy; choosing on the test split would overstate the result.

    python3 bench/model_selection.py path/to/20news-bydate.tar.gz
"""
import sys
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from sklearn_reference import read  # noqa: E402


def main(archive):
    splits = read(archive)
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    rows = []
    print(f"{'weighting':9} {'min_df':>6} {'alpha':>6} {'cv acc':>7} {'test acc':>8} {'test F1':>8}")
    for weighting in ("counts", "tfidf"):
        for min_df in (1, 2, 3):
            for alpha in (1.0, 0.5, 0.3, 0.1, 0.03):
                steps = [CountVectorizer(min_df=min_df)]
                steps += [TfidfTransformer()] if weighting == "tfidf" else []
                steps += [MultinomialNB(alpha=alpha)]
                cv = cross_val_score(make_pipeline(*steps), xtr, ytr, cv=folds).mean()
                pred = make_pipeline(*steps).fit(xtr, ytr).predict(xte)
                row = (weighting, min_df, alpha, cv, accuracy_score(yte, pred), f1_score(yte, pred, average="macro"))
                rows.append(row)
                print(f"{row[0]:9} {row[1]:6} {row[2]:6} {row[3]:7.4f} {row[4]:8.4f} {row[5]:8.4f}")
    best = max(rows, key=lambda r: r[3])
    print(f"best by cross-validation: weighting={best[0]} min_df={best[1]} alpha={best[2]} "
          f"(cv {best[3]:.4f}, test accuracy {best[4]:.4f}, macro-F1 {best[5]:.4f})")


if __name__ == "__main__":
    main(sys.argv[1])
