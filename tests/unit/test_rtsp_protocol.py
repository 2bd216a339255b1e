"""The words of RTSP that ingest's client reads and writes: messages, authentication, the SDP."""

import base64

import pytest

from services.ingest.rtsp import messages
from services.ingest.rtsp.auth import AuthError, Authorizer
from services.ingest.rtsp.sdp import SdpError, resolve, video_track


def test_request_and_response_heads() -> None:
    assert messages.request("OPTIONS", "rtsp://cam/s", 3, {"Session": "ab"}) == (
        b"OPTIONS rtsp://cam/s RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: csu-ingest\r\nSession: ab\r\n\r\n"
    )
    _, status, reason, method, headers = messages.parse_head(
        b'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm="x", nonce="n"\r\n'
        b'www-authenticate: Basic realm="x"'
    )
    assert (status, reason, method) == (401, "Unauthorized", "")
    assert headers["www-authenticate"] == ['Digest realm="x", nonce="n"', 'Basic realm="x"']
    assert messages.parse_head(b"GET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 9")[3] == "GET_PARAMETER"
    for garbage in (b"HTTP 200 what", b"RTSP/1.0 abc OK", b"RTSP/1.0 200 OK\r\nno colon here"):
        with pytest.raises(messages.MessageError):
            messages.parse_head(garbage)
    with pytest.raises(messages.MessageError, match="Content-Length"):
        messages.content_length({"content-length": ["999999999"]})


def test_a_head_ends_at_its_blank_line_even_with_bare_line_feeds() -> None:
    assert messages.head_end(b"$xxRTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nbody", 3) == (27, 4)
    assert messages.head_end(b"RTSP/1.0 200 OK\nCSeq: 1\n\nbody", 0) == (23, 2)
    assert messages.head_end(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n", 0) == (-1, 0)


def test_session_and_transport_headers() -> None:
    assert messages.session_id("12345678;timeout=60") == ("12345678", 60.0)
    assert messages.session_id(" abc ") == ("abc", None)
    assert messages.interleaved_channels("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1A") == (2, 3)
    assert messages.interleaved_channels("RTP/AVP/TCP;interleaved=4") == (4, 5)
    assert messages.interleaved_channels("RTP/AVP;unicast;client_port=5000-5001") is None


def test_digest_answers_rfc_2617s_example_and_basic_only_when_asked() -> None:
    auth = Authorizer("Mufasa", "Circle Of Life", cnonce=lambda: "0a4f113b")
    assert auth.header("GET", "/dir/index.html") is None  # nothing is sent before the camera asks
    auth.challenged([
        'Basic realm="testrealm@host.com"',
        'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    ])  # fmt: skip
    header = auth.header("GET", "/dir/index.html")
    assert header is not None and header.startswith("Digest ")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header and "nc=00000001" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    basic = Authorizer("admin", "p:ss")
    basic.challenged(['Basic realm="camera"'])
    assert basic.header("DESCRIBE", "rtsp://cam/") == "Basic " + base64.b64encode(b"admin:p:ss").decode()
    with pytest.raises(AuthError, match="negotiate"):
        Authorizer("a", "b").challenged(["Negotiate abc", 'Digest realm="r", nonce="n", algorithm=SHA-512'])


SDP = b"""v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=Session\r
a=control:*\r
m=audio 0 RTP/AVP 0\r
a=control:trackID=0\r
m=video 0 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 packetization-mode=1; profile-level-id=640028; sprop-parameter-sets=Z2QAKKy0A8ARPywg,aO88sA==\r
a=framerate:25.000\r
a=control:trackID=1\r
"""


def test_the_first_video_track_of_a_description() -> None:
    track = video_track(SDP, "rtsp://cam:554/live/")
    assert (track.codec, track.payload_type, track.clock_rate, track.frame_rate) == ("h264", 96, 90_000, 25.0)
    assert track.control == "rtsp://cam:554/live/trackID=1" and track.session_control == "rtsp://cam:554/live/"
    assert track.parameter_sets == (base64.b64decode("Z2QAKKy0A8ARPywg"), base64.b64decode("aO88sA=="))
    assert track.fmtp["packetization-mode"] == "1"
    hevc = video_track(
        b"m=video 0 RTP/AVP 98\na=rtpmap:98 H265/90000\na=fmtp:98 sprop-vps=QAE;sprop-sps=QgE;sprop-pps=RAE\n"
        b"a=control:rtsp://other/track\n",
        "rtsp://cam/s",
    )
    assert hevc.codec == "hevc" and hevc.parameter_sets == (b"\x40\x01", b"\x42\x01", b"\x44\x01")
    assert hevc.control == "rtsp://other/track" and hevc.session_control == "rtsp://cam/s"
    jpeg = video_track(b"m=video 0 RTP/AVP 26\n", "rtsp://cam/s")
    assert (jpeg.codec, jpeg.clock_rate) == ("jpeg", 90_000)
    with pytest.raises(SdpError, match="no video"):
        video_track(b"v=0\nm=audio 0 RTP/AVP 0\n", "rtsp://cam/")
    with pytest.raises(SdpError, match="no rtpmap"):
        video_track(b"m=video 0 RTP/AVP 99\n", "rtsp://cam/")


def test_control_urls_resolve_as_ffmpeg_resolves_them() -> None:
    assert resolve("rtsp://cam/live", "track1") == "rtsp://cam/live/track1"
    assert resolve("rtsp://cam/live/", "track1") == "rtsp://cam/live/track1"
    assert resolve("rtsp://cam/live", "*") == resolve("rtsp://cam/live", "") == "rtsp://cam/live"
    assert resolve("rtsp://cam/live", "rtsp://cam:8554/x") == "rtsp://cam:8554/x"
