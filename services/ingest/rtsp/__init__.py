"""Ingest's own RTSP client: H.264 and H.265 cameras over RTSP/TCP, read on the event loop.

Why not FFmpeg's (PyAV's) RTSP demuxer, which ingest uses for everything else: it reads each
interleaved RTP packet with two or three socket reads and a poll, and a camera needs a thread
blocked in it. A 1080p camera at 4 Mbit/s sends some 400 RTP packets a second, so 128 cameras
cost tens of thousands of system calls and GIL hand-overs a second before a byte is published
(bench/ingest.py measured the bare PyAV loop at ~150 µs of CPU per frame, two thirds of it in the
kernel). Here every camera is an asyncio protocol on ingest's one event loop: the kernel hands
over whatever has arrived in one read, the RTP packets are walked in place, and an access unit is
one join of the packets' payloads: the per-frame cost is a fraction of the demuxer's, and no thread
is needed per camera. Moonfire NVR came to the same conclusion for its Retina client.

What it speaks (the rest goes to FFmpeg, see worker.py):
- RTSP/1.0 (RFC 2326) over TCP, RTP interleaved on the RTSP connection: OPTIONS, DESCRIBE (with
  redirects), SETUP of the first video track, PLAY, keep-alives (GET_PARAMETER when the camera
  offers it, else OPTIONS) and TEARDOWN; Basic and Digest (MD5) authentication.
- RTP payloads of H.264 (RFC 6184: single NAL units, STAP-A, FU-A) and H.265 (RFC 7798: single
  units, aggregation and fragmentation units), turned into Annex B access units exactly as
  FFmpeg's demuxer gives them (a start code before every NAL unit, the SDP's parameter sets as
  extradata), so masking, the archive and the live view cannot tell the two apart.
- Only the video track is set up: a camera's audio (city policy: no audio) is never even asked for.
- Not here: UDP transport, RTSPS, and any other codec (MJPEG, MPEG-4 Part 2 over RTP), which old
  cameras send: those streams are read by FFmpeg as before.

Modules: messages (RTSP requests and responses), auth (Basic, Digest), sdp (the video track),
depacketize (RTP to access units), connection (the asyncio protocol: interleaved framing and
requests), session (DESCRIBE to PLAY, keep-alive, stream facts), worker (a camera stream's task:
reconnects, the watchdog, stamping, the fallback to FFmpeg).
"""
