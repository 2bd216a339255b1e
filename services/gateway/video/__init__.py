"""Video: cameras and what is seen of them. The routes (`routes/`) list and administer cameras, steer
PTZ, serve recordings, clips and the live view, edit privacy masks under four-eyes, and redact
footage for citizens; the modules beside them hold what those routes share (time ranges, the clip
cache, commissioning)."""
