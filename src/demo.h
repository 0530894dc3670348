/* demo.h — the playable demo hunt of `veltrix serve --demo` (demo.c): its definition and
 * its generated map. api.c creates it through the normal write path. */
#ifndef VELTRIX_DEMO_H
#define VELTRIX_DEMO_H
#include <stddef.h>

/* The demo hunt's definition (API.md hunt JSON), NUL-terminated. */
extern const char demo_hunt_json[];
/* The SVG tile of map cell (x, y) into out (at most cap bytes); returns its length. */
size_t demo_tile_svg(unsigned x, unsigned y, char *out, size_t cap);

#endif
