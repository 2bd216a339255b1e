"""Redaction for citizens' access: a recorded range of one camera, re-rendered so that only the
requester stays visible (scene redaction) or every other detected person is masked.

The original recording is never modified: the job reads the range through ArchiveService (the
masked recording, privacy masks included), writes a new clip to the redaction bucket, and the clip
expires with the citizen's request. No recognition and no identity: the requester is followed by
an image tracker from the boxes an operator drew; nothing compares, stores or classifies faces.
"""
