"""`metrics.jsonl` survives a kill in the middle of a write; a damaged line is named."""

import pytest

from cnnjax import train


def test_rows_are_whole_lines_and_a_partial_last_line_is_dropped_with_a_warning(tmp_path, caplog):
  writer = train.MetricWriter(str(tmp_path), tensorboard=False)
  writer.write(1, {"loss": 0.5})
  writer.write(2, {"loss": 0.25})
  assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n'
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 3, "lo')
  assert train.read_metrics(str(tmp_path)) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
  assert any(f"{tmp_path}/metrics.jsonl: dropping its partial last line 3" in m for m in caplog.messages)
  # A resume rewrites the file without it.
  train.MetricWriter(str(tmp_path), resume_step=2, tensorboard=False).write(3, {"loss": 0.125})
  assert [r["step"] for r in train.read_metrics(str(tmp_path))] == [1, 2, 3]


def test_a_damaged_line_before_the_last_names_the_file_and_line(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, oops}\n{"step": 3}\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl, line 2, is damaged .*; delete that line"):
    train.read_metrics(str(tmp_path))
