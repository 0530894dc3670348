/* qr.c — see qr.h. One <path> of unit squares: small and crisp at any print size. */
#include "qr.h"

#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *qr_svg(const char *text, size_t *len)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!q) return NULL;
    int w = q->width, size = w + 8;
    size_t cap = 512 + (size_t)w * (size_t)w * 24;
    char *out = malloc(cap);
    if (!out) {
        QRcode_free(q);
        return NULL;
    }
    size_t n = (size_t)snprintf(out, cap,
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                                "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                                "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                                size, size, size, size);
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            if (q->data[y * w + x] & 1)
                n += (size_t)snprintf(out + n, cap - n, "M%d %dh1v1h-1z", x + 4, y + 4);
    n += (size_t)snprintf(out + n, cap - n, "\"/></svg>\n");
    QRcode_free(q);
    *len = n;
    return out;
}
