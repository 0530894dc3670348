/* qr.h — QR codes as SVG (libqrencode), for printing the codes of a hunt. */
#ifndef VELTRIX_QR_H
#define VELTRIX_QR_H
#include <stddef.h>

/* An SVG document of text's QR code (error correction M, 4-module quiet zone); malloc'd,
 * caller frees. NULL on failure. */
char *qr_svg(const char *text, size_t *len);

#endif
