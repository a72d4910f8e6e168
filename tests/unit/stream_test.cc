// The streaming server's pure parts: SPDY/3.1 frames and zlib header blocks (against bytes an
// independent implementation wrote), WebSocket frames (masking, lengths, fragmentation,
// control frames, close), the token cache, the Kubernetes Status JSON, resize events, HTTP
// request heads and protocol negotiation.
#include <zlib.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "stream/http.h"
#include "stream/k8s_protocol.h"
#include "stream/spdy.h"
#include "stream/token_cache.h"
#include "stream/websocket.h"
#include "support/status_matchers.h"

namespace crib::stream {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Unhex(absl::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Collects what a spdy::FrameParser finds.
struct Frames : spdy::FrameParser::Visitor {
  void OnControlFrame(spdy::ControlFrame frame) override { control.push_back(std::move(frame)); }
  void OnData(uint32_t stream_id, absl::string_view data, bool fin) override {
    data_[stream_id].append(data.data(), data.size());
    if (fin) fins.push_back(stream_id);
  }
  std::vector<spdy::ControlFrame> control;
  std::map<uint32_t, std::string> data_;
  std::vector<uint32_t> fins;
};

TEST(SpdyDictionary, IsTheOneOfTheDraft) {
  const std::string& dict = spdy::HeaderDictionary();
  EXPECT_EQ(dict.size(), 1423u);
  // zlib names a preset dictionary by its Adler-32; SPDY/3 peers announce this one.
  uLong adler = adler32(0L, Z_NULL, 0);
  adler = adler32(adler, reinterpret_cast<const Bytef*>(dict.data()), dict.size());
  EXPECT_EQ(adler, 0xe3c6a7c2u);
  EXPECT_EQ(dict.substr(0, 11), std::string("\0\0\0\7options", 11));
  EXPECT_EQ(dict.substr(dict.size() - 6), "enq=0.");
}

TEST(SpdyFrames, ParsesWhatAnotherImplementationWrote) {
  // spdy-transport 3.0.0 as a client: SETTINGS (initial window 1 MiB), a session
  // WINDOW_UPDATE, and two SYN_STREAMs whose headers share one zlib stream.
  const std::string bytes = Unhex(
      "800300040000000c000000010100000700100000800300090000000800000000000f000080030001000000"
      "98000000010000000060003830e3c6a7c2007e0081ff000000060000000a73747265616d74797065000000"
      "056572726f72000000073a6d6574686f6400000004504f5354000000083a76657273696f6e000000084854"
      "54502f312e31000000053a70617468000000012f000000073a736368656d65000000056874747073000000"
      "053a686f7374000000096c6f63616c686f7374000000ffff800300010000009300000003000000006000007f"
      "0080ff000000060000000a73747265616d74797065000000067374646f7574000000073a6d6574686f6400"
      "000004504f5354000000083a76657273696f6e00000008485454502f312e31000000053a70617468000000"
      "012f000000073a736368656d65000000056874747073000000053a686f7374000000096c6f63616c686f73"
      "74000000ffff");
  // Fed a byte at a time: frame boundaries never line up with reads.
  spdy::FrameParser parser;
  Frames frames;
  for (char c : bytes) ASSERT_THAT(parser.Feed(absl::string_view(&c, 1), &frames), IsOk());
  ASSERT_EQ(frames.control.size(), 4u);
  EXPECT_EQ(frames.control[0].type, spdy::kSettings);
  absl::StatusOr<std::vector<std::pair<uint32_t, uint32_t>>> settings =
      spdy::ParseSettings(frames.control[0]);
  ASSERT_THAT(settings.status(), IsOk());
  EXPECT_THAT(*settings, ElementsAre(Pair(spdy::kSettingInitialWindowSize, 1u << 20)));
  EXPECT_EQ(frames.control[1].type, spdy::kWindowUpdate);
  absl::StatusOr<std::pair<uint32_t, uint32_t>> update = spdy::ParseIdAndValue(frames.control[1]);
  ASSERT_THAT(update.status(), IsOk());
  EXPECT_EQ(update->first, 0u);
  EXPECT_EQ(update->second, 0xf0000u);
  spdy::HeaderDecompressor decompressor;
  std::vector<std::string> types;
  for (int i : {2, 3}) {
    ASSERT_EQ(frames.control[i].type, spdy::kSynStream);
    absl::StatusOr<spdy::SynStream> syn = spdy::ParseSynStream(frames.control[i]);
    ASSERT_THAT(syn.status(), IsOk());
    EXPECT_EQ(syn->stream_id, i == 2 ? 1u : 3u);
    absl::StatusOr<spdy::HeaderBlock> headers = decompressor.Decompress(syn->headers);
    ASSERT_THAT(headers.status(), IsOk());
    types.push_back(spdy::HeaderValue(*headers, "streamType"));
    EXPECT_EQ(spdy::HeaderValue(*headers, ":method"), "POST");
  }
  EXPECT_THAT(types, ElementsAre("error", "stdout"));
}

TEST(SpdyFrames, HeaderBlocksRoundTripThroughOneZlibStreamEachWay) {
  spdy::HeaderCompressor compressor;
  spdy::HeaderDecompressor decompressor;
  for (int i = 0; i < 20; ++i) {
    spdy::HeaderBlock headers = {{"streamtype", "data"},
                                 {"port", absl::StrCat(8000 + i)},
                                 {"requestid", absl::StrCat(i)},
                                 {"multi", std::string("a\0b", 3)}};
    absl::StatusOr<std::string> compressed = compressor.Compress(headers);
    ASSERT_THAT(compressed.status(), IsOk());
    absl::StatusOr<spdy::HeaderBlock> back = decompressor.Decompress(*compressed);
    ASSERT_THAT(back.status(), IsOk());
    EXPECT_EQ(*back, headers);
    EXPECT_EQ(spdy::HeaderValue(*back, "MULTI"), "a");
  }
  // Later blocks reuse the earlier ones' history: they shrink.
  absl::StatusOr<std::string> again = compressor.Compress({{"streamtype", "data"}});
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_LT(again->size(), 16u);
}

TEST(SpdyFrames, RefusesABrokenOrForeignHeaderBlock) {
  spdy::HeaderDecompressor decompressor;
  // A zlib stream with another preset dictionary.
  z_stream z{};
  ASSERT_EQ(deflateInit(&z, Z_DEFAULT_COMPRESSION), Z_OK);
  const char other[] = "not the spdy dictionary";
  deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(other), sizeof(other));
  std::string in = spdy::EncodeHeaderBlock({{"streamtype", "error"}});
  char out[256];
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = in.size();
  z.next_out = reinterpret_cast<Bytef*>(out);
  z.avail_out = sizeof(out);
  deflate(&z, Z_SYNC_FLUSH);
  std::string block(out, sizeof(out) - z.avail_out);
  deflateEnd(&z);
  EXPECT_THAT(decompressor.Decompress(block),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dictionary")));
  EXPECT_THAT(spdy::DecodeHeaderBlock(std::string("\0\0\0\1\0\0\0\5ab", 10)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
}

TEST(SpdyFrames, BuildersAndParserAgree) {
  spdy::HeaderCompressor compressor;
  std::string wire = spdy::SynStreamFrame(5, 0, 3, spdy::kFlagFin, *compressor.Compress({}));
  wire += spdy::SynReplyFrame(5, 0, *compressor.Compress({{"a", "b"}}));
  wire += spdy::RstStreamFrame(7, spdy::kCancel);
  wire += spdy::PingFrame(9);
  wire += spdy::GoAwayFrame(11, 0);
  wire += spdy::WindowUpdateFrame(5, 1000);
  spdy::AppendDataFrame(&wire, 5, 0, std::string(100000, 'x'));
  spdy::AppendDataFrame(&wire, 5, spdy::kFlagFin, "");
  spdy::FrameParser parser;
  Frames frames;
  // In odd-sized pieces.
  for (size_t at = 0; at < wire.size(); at += 997) {
    ASSERT_THAT(parser.Feed(absl::string_view(wire).substr(at, 997), &frames), IsOk());
  }
  ASSERT_EQ(frames.control.size(), 6u);
  EXPECT_EQ(frames.control[0].flags, spdy::kFlagFin);
  absl::StatusOr<spdy::SynStream> syn = spdy::ParseSynStream(frames.control[0]);
  ASSERT_THAT(syn.status(), IsOk());
  EXPECT_EQ(syn->stream_id, 5u);
  EXPECT_EQ(syn->priority, 3);
  EXPECT_EQ(frames.control[2].type, spdy::kRstStream);
  EXPECT_EQ(spdy::ParseIdAndValue(frames.control[2])->second, spdy::kCancel);
  EXPECT_EQ(spdy::ParseIdAndValue(frames.control[3])->first, 9u);
  EXPECT_EQ(spdy::ParseIdAndValue(frames.control[4])->first, 11u);
  EXPECT_EQ(spdy::ParseIdAndValue(frames.control[5])->second, 1000u);
  EXPECT_EQ(frames.data_[5], std::string(100000, 'x'));
  EXPECT_THAT(frames.fins, ElementsAre(5u));
}

TEST(SpdyFrames, RefusesOversizedControlFramesAndOtherVersions) {
  spdy::FrameParser parser(/*max_control_frame=*/1024);
  Frames frames;
  EXPECT_THAT(parser.Feed(spdy::SynStreamFrame(1, 0, 0, 0, std::string(2000, 'h')), &frames),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds")));
  spdy::FrameParser v2;
  std::string frame = spdy::PingFrame(1);
  frame[1] = 2;
  EXPECT_THAT(v2.Feed(frame, &frames),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version 2")));
}

// ---- WebSocket ----

TEST(WebSocket, AcceptKeyOfTheRfc) {
  EXPECT_EQ(ws::AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, PayloadLengthEncodings) {
  EXPECT_EQ(ws::Frame(ws::kBinary, std::string(125, 'a')).size(), 2u + 125);
  EXPECT_EQ(ws::Frame(ws::kBinary, std::string(126, 'a')).size(), 4u + 126);
  EXPECT_EQ(ws::Frame(ws::kBinary, std::string(65535, 'a')).size(), 4u + 65535);
  EXPECT_EQ(ws::Frame(ws::kBinary, std::string(65536, 'a')).size(), 10u + 65536);
  std::string frame = ws::Frame(ws::kText, "Hello");
  EXPECT_EQ(frame, std::string("\x81\x05Hello"));
}

TEST(WebSocket, UnmasksTheRfcExample) {
  // RFC 6455 5.7: a masked "Hello" from a client.
  std::string frame("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  ws::FrameParser parser(/*require_mask=*/true, 1024);
  std::vector<ws::Message> messages;
  ASSERT_THAT(parser.Feed(frame, [&](ws::Message&& m) { messages.push_back(std::move(m)); }),
              IsOk());
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].opcode, ws::kText);
  EXPECT_EQ(messages[0].data, "Hello");
}

TEST(WebSocket, ReassemblesFragmentsAroundControlFrames) {
  const uint8_t mask[4] = {1, 2, 3, 4};
  std::string wire = ws::Frame(ws::kBinary, "\x01hel", /*fin=*/false, mask);
  wire += ws::Frame(ws::kPing, "p", true, mask);
  wire += ws::Frame(ws::kContinuation, "lo ", false, mask);
  wire += ws::Frame(ws::kContinuation, std::string(70000, 'w'), true, mask);
  wire += ws::Frame(ws::kBinary, "", true, mask);
  wire += ws::Frame(ws::kClose, ws::ClosePayload(ws::kCloseNormal, "bye"), true, mask);
  ws::FrameParser parser(true, 1 << 20);
  std::vector<ws::Message> messages;
  for (size_t at = 0; at < wire.size(); at += 333) {
    ASSERT_THAT(parser.Feed(absl::string_view(wire).substr(at, 333),
                            [&](ws::Message&& m) { messages.push_back(std::move(m)); }),
                IsOk());
  }
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].opcode, ws::kPing);
  EXPECT_EQ(messages[0].data, "p");
  EXPECT_EQ(messages[1].opcode, ws::kBinary);
  EXPECT_EQ(messages[1].data, "\x01hello " + std::string(70000, 'w'));
  EXPECT_EQ(messages[2].data, "");
  EXPECT_EQ(messages[3].opcode, ws::kClose);
  EXPECT_EQ(messages[3].data, ws::ClosePayload(1000, "bye"));
  EXPECT_EQ(messages[3].data.substr(0, 2), "\x03\xe8");
}

TEST(WebSocket, ProtocolErrors) {
  std::vector<ws::Message> messages;
  auto collect = [&](ws::Message&& m) { messages.push_back(std::move(m)); };
  const uint8_t mask[4] = {9, 9, 9, 9};
  {
    ws::FrameParser parser(true, 1024);
    EXPECT_THAT(parser.Feed(ws::Frame(ws::kBinary, "x"), collect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unmasked")));
    EXPECT_EQ(parser.close_code(), ws::kCloseProtocolError);
  }
  {
    ws::FrameParser parser(true, 1024);
    EXPECT_THAT(parser.Feed(ws::Frame(ws::kBinary, std::string(2000, 'x'), true, mask), collect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("larger")));
    EXPECT_EQ(parser.close_code(), ws::kCloseTooBig);
  }
  {
    ws::FrameParser parser(true, 1024);
    EXPECT_THAT(parser.Feed(ws::Frame(ws::kContinuation, "x", true, mask), collect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("continuation")));
  }
  {
    ws::FrameParser parser(true, 1024);
    EXPECT_THAT(parser.Feed(ws::Frame(ws::kPing, std::string(126, 'x'), true, mask), collect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("control")));
  }
  {
    ws::FrameParser parser(true, 1024);
    std::string frame = ws::Frame(ws::kBinary, "x", true, mask);
    frame[0] |= 0x40;  // RSV1 without an extension
    EXPECT_THAT(parser.Feed(frame, collect),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reserved")));
  }
  EXPECT_TRUE(messages.empty());
}

// ---- Tokens ----

TEST(TokenCache, SingleUseUnguessableAndExpiring) {
  absl::Time now = absl::FromUnixSeconds(1000000);
  TokenCache cache(absl::Minutes(1), 3, [&] { return now; });
  ExecRequest exec;
  exec.container_id = "c1";
  absl::StatusOr<std::string> token = cache.Insert(exec);
  ASSERT_THAT(token.status(), IsOk());
  EXPECT_EQ(token->size(), 43u);
  EXPECT_EQ(
      token->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  absl::StatusOr<PreparedRequest> got = cache.Consume(*token);
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(std::get<ExecRequest>(*got).container_id, "c1");
  EXPECT_THAT(cache.Consume(*token), StatusIs(absl::StatusCode::kNotFound, HasSubstr("used")));
  EXPECT_THAT(cache.Consume("nonsense"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  absl::StatusOr<std::string> late = cache.Insert(AttachRequest{});
  ASSERT_THAT(late.status(), IsOk());
  now += absl::Minutes(1);
  EXPECT_THAT(cache.Consume(*late), StatusIs(absl::StatusCode::kNotFound, HasSubstr("expired")));

  // A bounded number waits; expired ones make room.
  for (int i = 0; i < 3; ++i) ASSERT_THAT(cache.Insert(PortForwardRequest{}).status(), IsOk());
  EXPECT_THAT(cache.Insert(PortForwardRequest{}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::_));
  now += absl::Seconds(61);
  EXPECT_THAT(cache.Insert(PortForwardRequest{}).status(), IsOk());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCache, TokensDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    absl::StatusOr<std::string> token = NewToken();
    ASSERT_THAT(token.status(), IsOk());
    EXPECT_TRUE(seen.insert(*token).second);
  }
}

// ---- Kubernetes protocol ----

TEST(K8sProtocol, StatusJson) {
  EXPECT_EQ(SuccessStatusJson(), R"({"metadata":{},"status":"Success"})");
  nlohmann::json failure = nlohmann::json::parse(ExitCodeStatusJson(3));
  EXPECT_EQ(failure["status"], "Failure");
  EXPECT_EQ(failure["reason"], "NonZeroExitCode");
  EXPECT_EQ(failure["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(failure["details"]["causes"][0]["message"], "3");
  EXPECT_THAT(failure["message"].get<std::string>(), HasSubstr("non-zero exit code"));
  EXPECT_EQ(ExitCodeStatusJson(0), SuccessStatusJson());
  nlohmann::json internal = nlohmann::json::parse(InternalErrorStatusJson("boom \"x\""));
  EXPECT_EQ(internal["reason"], "InternalError");
  EXPECT_EQ(internal["code"], 500);
  EXPECT_EQ(internal["details"]["causes"][0]["message"], "boom \"x\"");
}

TEST(K8sProtocol, Negotiation) {
  std::vector<std::string> server(std::begin(kRemoteCommandSpdyProtocols),
                                  std::end(kRemoteCommandSpdyProtocols));
  // The client's order wins, as in Kubernetes' httpstream.Handshake.
  EXPECT_EQ(Negotiate({"v2.channel.k8s.io", "v4.channel.k8s.io"}, server), "v2.channel.k8s.io");
  EXPECT_EQ(Negotiate({"v9.channel.k8s.io, v3.channel.k8s.io"}, server), "v3.channel.k8s.io");
  EXPECT_EQ(Negotiate({"v9.channel.k8s.io"}, server), "");
  EXPECT_EQ(RemoteCommandVersion("v5.channel.k8s.io"), 5);
  EXPECT_EQ(RemoteCommandVersion("channel.k8s.io"), 1);
  EXPECT_EQ(RemoteCommandVersion("base64.channel.k8s.io"), 1);
  EXPECT_EQ(RemoteCommandVersion("v4.base64.channel.k8s.io"), 4);
  EXPECT_TRUE(IsBase64Protocol("base64.channel.k8s.io"));
  EXPECT_FALSE(IsBase64Protocol("v4.channel.k8s.io"));
}

TEST(K8sProtocol, ResizeEventsAcrossPieces) {
  ResizeDecoder decoder;
  EXPECT_TRUE(decoder.Feed(R"({"Width":80,)").empty());
  EXPECT_THAT(decoder.Feed(R"("Height":24}{"Width":100,"Height":40})"),
              ElementsAre(Pair(24, 80), Pair(40, 100)));
  EXPECT_THAT(decoder.Feed(R"(garbage{"Height":1}{"Width":"x","Height":2}{"Width":7,"Height":8})"),
              ElementsAre(Pair(8, 7)));
}

// ---- HTTP ----

TEST(Http, RequestHead) {
  std::string head =
      "POST /portforward/abc?ports=80,8080&ports=9000&x=%2Fy HTTP/1.1\r\n"
      "Host: 127.0.0.1:1234\r\nConnection: keep-alive, Upgrade\r\nUpgrade: SPDY/3.1\r\n"
      "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
      "X-Stream-Protocol-Version: v3.channel.k8s.io\r\n\r\nextra";
  size_t end = HeadEnd(head);
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(head.substr(end), "extra");
  absl::StatusOr<HttpRequest> request = ParseRequestHead(head.substr(0, end));
  ASSERT_THAT(request.status(), IsOk());
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->path, "/portforward/abc");
  EXPECT_TRUE(request->HasToken("connection", "upgrade"));
  EXPECT_FALSE(request->HasToken("connection", "close"));
  EXPECT_THAT(request->Values("x-stream-protocol-version"),
              ElementsAre("v4.channel.k8s.io", "v3.channel.k8s.io"));
  EXPECT_THAT(request->QueryValues("ports"), ElementsAre("80,8080", "9000"));
  EXPECT_THAT(request->QueryValues("x"), ElementsAre("/y"));
  EXPECT_EQ(HeadEnd("GET / HTTP/1.1\r\nHost: x\r\n"), std::string::npos);
  EXPECT_THAT(ParseRequestHead("GARBAGE\r\n\r\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(HttpResponse(404, "gone"), ::testing::StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(HttpResponse(404, "gone"), HasSubstr("Content-Length: 4\r\n"));
}

}  // namespace
}  // namespace crib::stream
