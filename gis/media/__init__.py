"""Case media: photo evidence of a case at each workflow step, and the files behind it.

images    sniff the type from the bytes, open safely (decompression-bomb guard), EXIF time
          and GPS, thumbnails and EXIF-free public copies (Pillow, pillow-heif for HEIC)
store     the media folder: content-addressed files by SHA-256, written atomically
service   upload rules (stages, limits, idempotency keys, flags), listing, superseding

May import gis.dispatch (resolving a case), gis.geo and gis.platform; gis.public calls it.
"""
