"""Style transfer that keeps the content's colours: luminance-only transfer on chelsea, brick texture."""

from experiments.configs import style_default


def get_config():
  c = style_default.get_config()
  c.content = "chelsea"
  c.style = "brick"
  c.color = "luminance"  # or 'histogram': match the style's colour histograms to the content first
  return c
