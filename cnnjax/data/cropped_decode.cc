// One window of a JPEG decoded at a DCT scale of 1/denom with libjpeg-turbo: the rows above the window are
// skipped (entropy-decoded only), the rows below are never read, and only the iMCU columns that cover it are
// dequantised, transformed and colour-converted (jpeg_crop_scanline). The counterpart of TensorFlow's
// decode_and_crop_jpeg, which no Python package exposes; loaded with ctypes by cropped_decode.py.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

extern "C" {
#include <jpeglib.h>
}

namespace {

struct ErrorManager {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
};

void OnError(j_common_ptr info) { std::longjmp(reinterpret_cast<ErrorManager*>(info->err)->jump, 1); }
void OnMessage(j_common_ptr) {}  // warnings (e.g. a truncated file, decoded grey below) stay silent, as in OpenCV

}  // namespace

// Writes rows [top, top + height) and columns [left, left + width) of the image scaled by 1/denom into `out`
// (height x width x channels, uint8; channels 1 = grey, 3 = RGB). Returns 0, or 1 with libjpeg's reason in
// `message` (also where the window does not lie inside the scaled image).
extern "C" int cnnjax_decode_crop(const unsigned char* data, unsigned long size, int denom, int channels, int left,
                                  int top, int width, int height, unsigned char* out, char* message,
                                  int message_size) {
  jpeg_decompress_struct info;
  ErrorManager error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = OnError;
  error.manager.output_message = OnMessage;
  if (setjmp(error.jump)) {
    char reason[JMSG_LENGTH_MAX];
    (*info.err->format_message)(reinterpret_cast<j_common_ptr>(&info), reason);
    std::snprintf(message, message_size, "%s", reason);
    jpeg_destroy_decompress(&info);
    return 1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, size);
  jpeg_read_header(&info, TRUE);
  info.scale_num = 1;
  info.scale_denom = denom;
  info.out_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_start_decompress(&info);
  if (left + width > static_cast<int>(info.output_width) || top + height > static_cast<int>(info.output_height)) {
    std::snprintf(message, message_size, "window %dx%d at (%d, %d) outside the %ux%u image at 1/%d", width, height,
                  left, top, info.output_width, info.output_height, denom);
    jpeg_destroy_decompress(&info);
    return 1;
  }
  // One more column on each side: at the edges of a cropped scanline the chroma upsampling repeats the edge
  // sample; with its neighbour decoded, every pixel of the window equals the whole image's.
  JDIMENSION first_column = left > 0 ? left - 1 : 0;
  JDIMENSION columns = std::min<JDIMENSION>(left + width + 1, info.output_width) - first_column;
  jpeg_crop_scanline(&info, &first_column, &columns);  // widens the window to whole iMCUs
  const size_t row_bytes = static_cast<size_t>(width) * channels;
  const size_t offset = static_cast<size_t>(left - static_cast<int>(first_column)) * channels;
  JSAMPARRAY row = (*info.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&info), JPOOL_IMAGE,
                                             columns * channels, 1);
  if (top > 0) jpeg_skip_scanlines(&info, top);
  for (int r = 0; r < height; ++r) {
    jpeg_read_scanlines(&info, row, 1);
    std::memcpy(out + r * row_bytes, row[0] + offset, row_bytes);
  }
  jpeg_abort_decompress(&info);  // the rows below the window are never decoded
  jpeg_destroy_decompress(&info);
  return 0;
}
