"""The tf.data reference of the input benchmark, run in its own process: fused JPEG decode-and-crop, flip, batch.

  python -m experiments.bench.tf_input SPEC.json OUT.json

SPEC names a pickle of encoded JPEG records, the output size, batch size, the
thread counts to time, and batches (warm-up and timed) per count. The
pipeline is TensorFlow's ImageNet input: `sample_distorted_bounding_box` on
the header's shape (area 8-100%, aspect 3/4-4/3, 10 tries), then
`decode_and_crop_jpeg` (decodes only the crop's DCT blocks), bilinear resize,
random flip, uint8. CPU time is the whole process's (all tf.data threads).
"""

import json
import pickle
import sys
import time


def measure(records: list[bytes], size: int, batch_size: int, threads: int, warmup: int, batches: int) -> dict:
  """Images per second and per CPU-second of the tf.data pipeline with `threads` threads."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def crop(data):
    shape = tf.image.extract_jpeg_shape(data)
    begin, box_size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
    y, x, _ = tf.unstack(begin)
    h, w, _ = tf.unstack(box_size)
    image = tf.image.decode_and_crop_jpeg(data, tf.stack([y, x, h, w]), channels=3)
    image = tf.image.resize(image, (size, size), method="bilinear")
    image = tf.image.random_flip_left_right(image)
    return tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)

  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  ds = tf.data.Dataset.from_tensor_slices(records).repeat().map(crop, num_parallel_calls=threads)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(2).with_options(options)
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  cpu, wall = time.process_time(), time.perf_counter()
  for _ in range(batches):
    next(it)
  cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
  images = batches * batch_size
  return {"threads": threads, "images_per_s": images / wall, "images_per_cpu_s": images / cpu,
          "wall_s": wall, "cpu_s": cpu}


def main(spec_path: str, out_path: str) -> None:
  with open(spec_path) as f:
    spec = json.load(f)
  with open(spec["records"], "rb") as f:
    records = pickle.load(f)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rows = [measure(records, spec["size"], spec["batch_size"], t, spec["warmup"], spec["batches"])
          for t in spec["threads"]]
  with open(out_path, "w") as f:
    json.dump({"tensorflow": tf.__version__, "rows": rows}, f)


if __name__ == "__main__":
  main(*sys.argv[1:3])
