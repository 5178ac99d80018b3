#!/usr/bin/env python3
"""Builds a small text-classification task from tiny Shakespeare: which play a speech comes from.

Speeches (a "NAME:" line and the lines under it) by the leading characters of two plays become
rows of a CSV with columns text,label:
  romeo_juliet  ROMEO, JULIET, NURSE, FRIAR LAURENCE, MERCUTIO, CAPULET, BENVOLIO
  coriolanus    CORIOLANUS, MENENIUS, SICINIUS, BRUTUS, VOLUMNIA, COMINIUS, AUFIDIUS
Speaker names are removed from the text, so the model must go by what is said.

Usage: python3 scripts/make_speaker_task.py [tinyshakespeare.txt] [out.csv]
Defaults: ../shared/data/tinyshakespeare.txt and data/speaker_task.csv. Standard library only.
"""
import csv
import sys
from collections import Counter

PLAYS = {
    "romeo_juliet": {"ROMEO", "JULIET", "NURSE", "FRIAR LAURENCE", "MERCUTIO", "CAPULET", "BENVOLIO"},
    "coriolanus": {"CORIOLANUS", "MENENIUS", "SICINIUS", "BRUTUS", "VOLUMNIA", "COMINIUS", "AUFIDIUS"},
}


def speeches(text):
    """(speaker, speech) pairs: blocks separated by blank lines whose first line is 'NAME:'."""
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":") and lines[0][:-1].isupper():
            yield lines[0][:-1], " ".join(line.strip() for line in lines[1:])


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tinyshakespeare.txt"
    out = sys.argv[2] if len(sys.argv) > 2 else "data/speaker_task.csv"
    with open(source, encoding="utf-8") as f:
        text = f.read()
    rows = []
    for speaker, speech in speeches(text):
        for label, speakers in PLAYS.items():
            if speaker in speakers and len(speech) >= 20:
                rows.append((speech, label))
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    counts = Counter(label for _, label in rows)
    print(f"wrote {out}: {len(rows)} speeches, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
