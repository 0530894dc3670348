/* demo.c — the definition of the playable demo hunt created by `veltrix serve --demo`. */
#include "demo.h"

const char demo_hunt_json[] =
    "{\"name\": \"Veltrix demo hunt\","
    " \"map\": {\"width\": 32, \"height\": 32},"
    " \"codes\": ["
    "  {\"id\": \"lobby-1\", \"points\": 50, \"x\": 3, \"y\": 4},"
    "  {\"id\": \"lobby-2\", \"points\": 75, \"x\": 6, \"y\": 2},"
    "  {\"id\": \"fountain\", \"points\": 120, \"x\": 15, \"y\": 16},"
    "  {\"id\": \"library\", \"points\": 200, \"x\": 27, \"y\": 5},"
    "  {\"id\": \"rooftop\", \"points\": 300, \"x\": 30, \"y\": 30}],"
    " \"items\": ["
    "  {\"id\": \"key-red\", \"x\": 10, \"y\": 12, \"quantity\": 25},"
    "  {\"id\": \"key-blue\", \"x\": 20, \"y\": 8, \"quantity\": 10},"
    "  {\"id\": \"map-fragment\", \"x\": 5, \"y\": 25, \"quantity\": 1000}],"
    " \"zones\": ["
    "  {\"id\": \"atrium\", \"x\": 0, \"y\": 0, \"w\": 8, \"h\": 8,"
    "   \"chests\": [{\"id\": \"atrium-1\", \"points\": 100, \"loot\": [\"gem\"]},"
    "              {\"id\": \"atrium-2\", \"points\": 100, \"loot\": [\"gem\"]},"
    "              {\"id\": \"atrium-vault\", \"points\": 500, \"loot\": [\"crown\"],"
    "               \"requires\": \"key-red\"}]},"
    "  {\"id\": \"garden\", \"x\": 8, \"y\": 8, \"w\": 16, \"h\": 16,"
    "   \"chests\": [{\"id\": \"garden-blue\", \"points\": 250, \"loot\": [\"gem\", \"coin\"],"
    "               \"requires\": \"key-blue\"}],"
    "   \"chest_range\": {\"prefix\": \"drop-\", \"count\": 1000, \"points\": 10,"
    "                    \"loot\": [\"coin\"]}}]}";

#include <stddef.h>
#include <stdio.h>

/* One tile of the demo map as SVG (256 x 256): terrain colour by position, a grid line
 * and the coordinates. Returns the length written to out. */
size_t demo_tile_svg(unsigned x, unsigned y, char *out, size_t cap)
{
    unsigned hue = 90 + (x * 37 + y * 53) % 60, light = 40 + (x ^ y) % 7 * 3;
    int n = snprintf(out, cap,
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"256\" height=\"256\""
                     " viewBox=\"0 0 256 256\"><rect width=\"256\" height=\"256\""
                     " fill=\"hsl(%u,40%%,%u%%)\"/><path d=\"M0 0H256V256\" fill=\"none\""
                     " stroke=\"#0004\"/><text x=\"128\" y=\"138\" font-family=\"sans-serif\""
                     " font-size=\"28\" text-anchor=\"middle\" fill=\"#0007\">%u,%u</text></svg>",
                     hue, light, x, y);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
