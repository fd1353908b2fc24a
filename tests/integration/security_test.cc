// Security of the real bertd binary (issue #8): TLS and mutual TLS, bearer tokens and roles on every
// RPC, names that try to leave the data directory, and the message size limit. Certificates are
// made per run with the openssl command-line tool.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bertctl_process.h"
#include "bertd/v1/datasets.grpc.pb.h"
#include "bertd/v1/inference.grpc.pb.h"
#include "bertd/v1/jobs.grpc.pb.h"
#include "bertd/v1/models.grpc.pb.h"
#include "bertd/v1/server.grpc.pb.h"
#include "bertd_process.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "test_util.h"

namespace bertd::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Runs a shell command; the test fails when it does.
void Shell(const std::string& command) {
  const int rc = std::system(command.c_str());
  ASSERT_EQ(rc, 0) << command;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

// A CA, a server certificate for localhost/127.0.0.1 and a client certificate signed by it, and a
// second CA with its own client certificate that the server must not trust. EC P-256 keys: quick
// to make.
struct Certificates {
  std::string dir;
  std::string Path(const std::string& name) const { return dir + "/" + name; }
};

void MakeCa(const std::string& dir, const std::string& name) {
  Shell("cd " + dir + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 " +
        "-nodes -keyout " + name + ".key -out " + name + ".crt -days 2 -subj /CN=" + name +
        " 2>/dev/null");
}

void MakeSigned(const std::string& dir, const std::string& name, const std::string& ca,
                const std::string& extensions) {
  WriteFile(dir + "/" + name + ".ext", extensions);
  Shell("cd " + dir + " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " +
        "-keyout " + name + ".key -out " + name + ".csr -subj /CN=" + name + " 2>/dev/null && " +
        "openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca + ".key " +
        "-CAcreateserial -out " + name + ".crt -days 2 -extfile " + name + ".ext 2>/dev/null");
}

const Certificates& Certs() {
  static const Certificates* certs = [] {
    auto* c = new Certificates{MakeTempDir("bertd-certs")};
    MakeCa(c->dir, "ca");
    MakeSigned(c->dir, "server", "ca",
               "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    MakeSigned(c->dir, "client", "ca", "extendedKeyUsage=clientAuth\n");
    MakeCa(c->dir, "rogue-ca");
    MakeSigned(c->dir, "rogue-client", "rogue-ca", "extendedKeyUsage=clientAuth\n");
    return c;
  }();
  return *certs;
}

std::shared_ptr<grpc::Channel> TlsChannel(int port, bool client_cert,
                                          const std::string& client = "client") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadWholeFile(Certs().Path("ca.crt"));
  if (client_cert) {
    ssl.pem_cert_chain = ReadWholeFile(Certs().Path(client + ".crt"));
    ssl.pem_private_key = ReadWholeFile(Certs().Path(client + ".key"));
  }
  return grpc::CreateChannel("localhost:" + std::to_string(port), grpc::SslCredentials(ssl));
}

std::shared_ptr<grpc::Channel> PlainChannel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel, int timeout_seconds = 5) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, request, &response);
}

// BertdProcess waits over plaintext; a TLS server is polled over `channel` instead.
bool WaitServing(const std::shared_ptr<grpc::Channel>& channel) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) {
    if (HealthCheck(channel, 2).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

grpc::Status ListModels(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& token = "") {
  auto stub = v1::ModelService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  return stub->ListModels(&context, request, &response);
}

// For a start that must fail: waits until bertd logged `message` (or started after all), gives it
// a moment to exit, then returns its exit code (Terminate's SIGTERM only reaches a process that
// is still running, which then does not exit with 1).
int ExitCodeAfter(BertdProcess& process, const std::string& message) {
  for (int i = 0; i < 600; ++i) {
    const std::string log = process.log();
    if (log.find(message) != std::string::npos || log.find("bertd: ready") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return process.Terminate(30);
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override { data_dir_ = MakeTempDir("bertd-security"); }
  std::string data_dir_;
};

TEST_F(SecurityTest, TlsServesHealthAndRpcsAndRefusesPlaintext) {
  BertdProcess server(data_dir_, {"--tls_cert=" + Certs().Path("server.crt"),
                                  "--tls_key=" + Certs().Path("server.key")});
  auto tls = TlsChannel(server.grpc_port(), false);
  ASSERT_TRUE(WaitServing(tls)) << server.log();
  EXPECT_TRUE(ListModels(tls).ok());
  // A plaintext client cannot talk to a TLS port.
  grpc::Status plain = ListModels(PlainChannel(server.grpc_port()));
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
  EXPECT_THAT(server.log(), Not(HasSubstr("plaintext gRPC")));
}

TEST_F(SecurityTest, MutualTlsNeedsAClientCertificateFromTheConfiguredCa) {
  BertdProcess server(data_dir_, {"--tls_cert=" + Certs().Path("server.crt"),
                                  "--tls_key=" + Certs().Path("server.key"),
                                  "--tls_client_ca=" + Certs().Path("ca.crt")});
  auto with_cert = TlsChannel(server.grpc_port(), true);
  ASSERT_TRUE(WaitServing(with_cert)) << server.log();
  EXPECT_TRUE(ListModels(with_cert).ok());

  grpc::Status without_cert = ListModels(TlsChannel(server.grpc_port(), false));
  EXPECT_EQ(without_cert.error_code(), grpc::StatusCode::UNAVAILABLE)
      << without_cert.error_message();
  grpc::Status rogue = ListModels(TlsChannel(server.grpc_port(), true, "rogue-client"));
  EXPECT_EQ(rogue.error_code(), grpc::StatusCode::UNAVAILABLE) << rogue.error_message();
  // Health probes too need the certificate: mTLS is a property of the port.
  EXPECT_FALSE(HealthCheck(TlsChannel(server.grpc_port(), false)).ok());
}

TEST_F(SecurityTest, BadTlsFilesStopTheStartWithTheFlagName) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls_cert=" + Certs().Path("server.crt")}, "TLS needs both --tls_cert and --tls_key"},
      {{"--tls_client_ca=" + Certs().Path("ca.crt")}, "TLS needs both --tls_cert and --tls_key"},
      {{"--tls_cert=" + Certs().Path("server.crt"), "--tls_key=" + Certs().Path("client.key")},
       "--tls_key: " + Certs().Path("client.key") + " is not the key of the certificate"},
      {{"--tls_cert=" + Certs().Path("server.key"), "--tls_key=" + Certs().Path("server.key")},
       "--tls_cert: " + Certs().Path("server.key") + " holds no PEM certificate"},
      {{"--tls_cert=" + Certs().Path("server.crt"), "--tls_key=" + Certs().Path("missing.key")},
       "--tls_key: "},
      {{"--tls_cert=" + Certs().Path("server.crt"), "--tls_key=" + Certs().Path("server.key"),
        "--tls_client_ca=" + Certs().Path("server.key")},
       "--tls_client_ca: " + Certs().Path("server.key") + " holds no PEM certificate"},
  };
  for (const Case& c : cases) {
    BertdProcess server(MakeTempDir("bertd-security-bad"), c.flags);
    EXPECT_EQ(ExitCodeAfter(server, c.message), 1) << c.message;
    EXPECT_THAT(server.log(), HasSubstr(c.message));
  }
}

// ---- Bearer tokens -------------------------------------------------------------------------

constexpr char kReaderToken[] = "reader-secret-0123456789";
constexpr char kTrainerToken[] = "trainer-secret-0123456789";
constexpr char kAdminToken[] = "admin-secret-0123456789";

// Token file lines written from sha256sum's output: an implementation independent of bertd's.
std::string WriteTokenFile(const std::string& dir) {
  const std::string path = dir + "/tokens.txt";
  WriteFile(path, "# test tokens\n");
  for (const auto& [token, role] : std::vector<std::pair<std::string, std::string>>{
           {kReaderToken, "reader"}, {kTrainerToken, "trainer"}, {kAdminToken, "admin"}}) {
    Shell("printf %s '" + token + "' | sha256sum | cut -d' ' -f1 | tr -d '\\n' >> " + path +
          " && echo ' " + role + " " + role + "-holder' >> " + path);
  }
  return path;
}

// Calls `method` with one empty request message through the generic stub, so every RPC (unary or
// streaming) is reached the same way; returns the final status.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& authorization) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&context, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer response;
  do {
    call->Read(&response, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
  } while (ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// The roles of issue #8, written out here independently of server/src/auth: reader = inference
// and list/get, trainer = + datasets and jobs, admin = + load/unload models.
int NeededRole(const std::string& method) {
  static const std::map<std::string, int> kRoles = {
      {"/bertd.v1.InferenceService/Classify", 0},
      {"/bertd.v1.InferenceService/PredictNextSentence", 0},
      {"/bertd.v1.InferenceService/ExtractSpan", 0},
      {"/bertd.v1.InferenceService/FillMask", 0},
      {"/bertd.v1.InferenceService/Embed", 0},
      {"/bertd.v1.InferenceService/Tokenize", 0},
      {"/bertd.v1.ModelService/ListModels", 0},
      {"/bertd.v1.ModelService/GetModel", 0},
      {"/bertd.v1.ModelService/LoadModel", 2},
      {"/bertd.v1.ModelService/UnloadModel", 2},
      {"/bertd.v1.ServerService/GetServerInfo", 0},
      {"/bertd.v1.DatasetService/ListDatasets", 0},
      {"/bertd.v1.DatasetService/GetDataset", 0},
      {"/bertd.v1.DatasetService/UploadDataset", 1},
      {"/bertd.v1.DatasetService/DeleteDataset", 1},
      {"/bertd.v1.DatasetService/TrainVocabulary", 1},
      {"/bertd.v1.JobService/ListJobs", 0},
      {"/bertd.v1.JobService/GetJob", 0},
      {"/bertd.v1.JobService/WatchJob", 0},
      {"/bertd.v1.JobService/SubmitJob", 1},
      {"/bertd.v1.JobService/CancelJob", 1},
  };
  auto it = kRoles.find(method);
  return it == kRoles.end() ? -1 : it->second;
}

std::vector<std::string> AllBertdMethods() {
  const google::protobuf::FileDescriptor* files[] = {
      v1::ClassifyRequest::descriptor()->file(), v1::ListModelsRequest::descriptor()->file(),
      v1::UploadDatasetRequest::descriptor()->file(), v1::SubmitJobRequest::descriptor()->file(),
      v1::GetServerInfoRequest::descriptor()->file()};
  std::vector<std::string> methods;
  for (const auto* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      for (int m = 0; m < file->service(s)->method_count(); ++m) {
        methods.push_back("/" + file->service(s)->full_name() + "/" +
                          file->service(s)->method(m)->name());
      }
    }
  }
  return methods;
}

class TokenTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    server_ = std::make_unique<BertdProcess>(
        data_dir_, std::vector<std::string>{"--auth_tokens_file=" + WriteTokenFile(data_dir_),
                                            "--cpu_workers=0"});
    ASSERT_TRUE(server_->WaitUntilServing()) << server_->log();
  }
  std::unique_ptr<BertdProcess> server_;
};

TEST_F(TokenTest, EveryRpcChecksTheRoleOfItsToken) {
  const std::vector<std::string> methods = AllBertdMethods();
  ASSERT_EQ(methods.size(), 21u)
      << "a new RPC: declare its role in the .proto (option (bertd.v1.required_role)) and here";
  const std::pair<const char*, int> callers[] = {
      {kReaderToken, 0}, {kTrainerToken, 1}, {kAdminToken, 2}};
  for (const std::string& method : methods) {
    const int needed = NeededRole(method);
    ASSERT_GE(needed, 0) << method << " has no role in this test";
    for (const auto& [token, role] : callers) {
      grpc::Status status = CallRaw(server_->channel(), method, std::string("Bearer ") + token);
      if (role >= needed) {
        // Allowed: the empty request then fails (or succeeds) on its own merits.
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as role " << role << ": " << status.error_message();
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << method << " as role " << role << ": " << status.error_message();
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as role " << role << ": " << status.error_message();
        EXPECT_THAT(status.error_message(), HasSubstr("-holder' has role"));
      }
    }
  }
  // Every handler asked the edge who called (api/edge.h), and the edge counted every call,
  // refusals included, under its method.
  EXPECT_THAT(server_->log(), Not(HasSubstr("BUG:")));
  const std::string metrics = HttpGet(server_->metrics_port(), "/metrics");
  for (const char* method : {"LoadModel", "SubmitJob", "UploadDataset"}) {
    EXPECT_THAT(metrics, HasSubstr(std::string("bertd_requests_total{code=\"PERMISSION_DENIED\",method=\"") +
                                   method + "\""))
        << method;
  }
}

TEST_F(TokenTest, MissingOrWrongTokensAreUnauthenticatedOnEveryRpc) {
  const std::vector<std::string> bad = {
      "",  // no metadata at all
      "Bearer not-a-known-token",
      std::string("Basic ") + kAdminToken,
      std::string(kAdminToken),  // no scheme
      "Bearer ",
  };
  for (const std::string& method : AllBertdMethods()) {
    for (const std::string& authorization : bad) {
      grpc::Status status = CallRaw(server_->channel(), method, authorization);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method << " with '" << authorization << "': " << status.error_message();
      EXPECT_THAT(status.error_message(), Not(HasSubstr(kAdminToken)));
    }
  }
}

TEST_F(TokenTest, HealthAndReflectionNeedNoToken) {
  EXPECT_TRUE(HealthCheck(server_->channel()).ok());
  grpc::Status reflection = CallRaw(
      server_->channel(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "");
  EXPECT_TRUE(reflection.ok()) << reflection.error_message();
}

TEST_F(TokenTest, TokensNeverReachTheLog) {
  for (const char* token : {kReaderToken, kTrainerToken, kAdminToken, "wrong-token-abcdef"}) {
    for (const char* method : {"/bertd.v1.ModelService/LoadModel", "/bertd.v1.JobService/SubmitJob"}) {
      CallRaw(server_->channel(), method, std::string("Bearer ") + token);
    }
  }
  ASSERT_EQ(server_->Terminate(), 0);
  const std::string log = server_->log();
  EXPECT_THAT(log, HasSubstr("bearer tokens required (3 accepted"));
  for (const char* token : {kReaderToken, kTrainerToken, kAdminToken, "wrong-token-abcdef"}) {
    EXPECT_THAT(log, Not(HasSubstr(token)));
  }
}

TEST_F(SecurityTest, ABadTokenFileStopsTheStart) {
  WriteFile(data_dir_ + "/tokens.txt", "0123 admin root\n");
  BertdProcess server(data_dir_, {"--auth_tokens_file=" + data_dir_ + "/tokens.txt"});
  const std::string message = "tokens.txt:1: the first field must be the token's SHA-256";
  EXPECT_EQ(ExitCodeAfter(server, message), 1);
  EXPECT_THAT(server.log(), HasSubstr(message));
}

// ---- bertctl over TLS with a token -------------------------------------------------------------

TEST_F(SecurityTest, BertctlCreatesATokenAndUsesItOverMutualTls) {
  BertctlResult created = RunBertctl({"token", "create", "--role", "reader", "--name", "ci", "-o",
                                      "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // {"token": "...", "tokenFileLine": "<hash> reader ci"}
  auto field = [&](const std::string& key) {
    const size_t start = created.out.find("\"" + key + "\": \"") + key.size() + 5;
    return created.out.substr(start, created.out.find('"', start) - start);
  };
  const std::string token = field("token");
  const std::string line = field("tokenFileLine");
  ASSERT_EQ(token.size(), 6u + 64u) << created.out;
  WriteFile(data_dir_ + "/tokens.txt", line + "\n");
  WriteFile(data_dir_ + "/token", token + "\n");

  BertdProcess server(data_dir_, {"--tls_cert=" + Certs().Path("server.crt"),
                                  "--tls_key=" + Certs().Path("server.key"),
                                  "--tls_client_ca=" + Certs().Path("ca.crt"),
                                  "--auth_tokens_file=" + data_dir_ + "/tokens.txt"});
  ASSERT_TRUE(WaitServing(TlsChannel(server.grpc_port(), true))) << server.log();
  const std::vector<std::string> tls = {
      "--server", "127.0.0.1:" + std::to_string(server.grpc_port()), "--tls-server-name",
      "localhost", "--tls-ca", Certs().Path("ca.crt"), "--tls-cert", Certs().Path("client.crt"),
      "--tls-key", Certs().Path("client.key")};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), tls.begin(), tls.end());
    return args;
  };

  BertctlResult listed = RunBertctl(with({"models", "list", "--token-file", data_dir_ + "/token"}));
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  BertctlResult no_token = RunBertctl(with({"models", "list"}));
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_THAT(no_token.err, HasSubstr("BERTD_TOKEN"));
  BertctlResult reader_loads = RunBertctl(
      with({"models", "load", "m", "--token-file", data_dir_ + "/token"}));
  EXPECT_EQ(reader_loads.exit_code, 1);
  EXPECT_THAT(reader_loads.err, HasSubstr("needs admin"));
  // Without its client certificate bertctl cannot connect at all.
  BertctlResult no_cert = RunBertctl(
      {"models", "list", "--server", "127.0.0.1:" + std::to_string(server.grpc_port()),
       "--tls-server-name", "localhost", "--tls-ca", Certs().Path("ca.crt"), "--token", token});
  EXPECT_EQ(no_cert.exit_code, 1);
}

// ---- Names ---------------------------------------------------------------------------------

const std::vector<std::string>& HostileNames() {
  static const auto* names = new std::vector<std::string>{
      "..", "../outside", "a/../../outside", "/etc/passwd", "a/b", "a\\b", std::string("a\0b", 3),
      std::string(300, 'n'), ".hidden"};
  return *names;
}

TEST_F(SecurityTest, NamesThatCouldLeaveTheDataDirectoryAreRefused) {
  BertdProcess server(data_dir_, {"--cpu_workers=0"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto models = v1::ModelService::NewStub(server.channel());
  auto datasets = v1::DatasetService::NewStub(server.channel());
  auto jobs = v1::JobService::NewStub(server.channel());
  auto inference = v1::InferenceService::NewStub(server.channel());
  for (const std::string& name : HostileNames()) {
    SCOPED_TRACE(::testing::PrintToString(name));
    {
      grpc::ClientContext context;
      v1::LoadModelRequest request;
      request.set_name(name);
      v1::ModelInfo response;
      EXPECT_EQ(models->LoadModel(&context, request, &response).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
    {
      grpc::ClientContext context;
      v1::LoadModelRequest request;
      request.set_name("m");
      request.set_version(name);
      v1::ModelInfo response;
      EXPECT_EQ(models->LoadModel(&context, request, &response).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
    {
      grpc::ClientContext context;
      v1::UnloadModelRequest request;
      request.set_model(name);
      v1::UnloadModelResponse response;
      EXPECT_EQ(models->UnloadModel(&context, request, &response).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
    {
      grpc::ClientContext context;
      v1::ClassifyRequest request;
      request.set_model(name);
      request.add_inputs()->set_text("x");
      v1::ClassifyResponse response;
      EXPECT_EQ(inference->Classify(&context, request, &response).error_code(),
                grpc::StatusCode::INVALID_ARGUMENT);
    }
    {
      grpc::ClientContext context;
      v1::Dataset response;
      auto writer = datasets->UploadDataset(&context, &response);
      v1::UploadDatasetRequest metadata;
      metadata.mutable_metadata()->set_name(name);
      metadata.mutable_metadata()->set_format("tsv");
      metadata.mutable_metadata()->mutable_text()->set_index(0);
      writer->Write(metadata);
      v1::UploadDatasetRequest chunk;
      chunk.set_chunk("hello\n");
      writer->Write(chunk);
      writer->WritesDone();
      grpc::Status status = writer->Finish();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("metadata.name"));
    }
    for (const char* field : {"output_model", "name", "train_dataset", "eval_dataset"}) {
      grpc::ClientContext context;
      v1::SubmitJobRequest request;
      v1::JobSpec* spec = request.mutable_spec();
      spec->set_task(v1::TRAINING_TASK_SEQUENCE_CLASSIFICATION);
      spec->set_base_model("base");
      spec->set_train_dataset("train");
      spec->set_output_model("out");
      spec->set_name("job");
      const google::protobuf::FieldDescriptor* descriptor =
          spec->GetDescriptor()->FindFieldByName(field);
      spec->GetReflection()->SetString(spec, descriptor, name);
      v1::Job response;
      grpc::Status status = jobs->SubmitJob(&context, request, &response);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
      EXPECT_THAT(status.error_message(), HasSubstr(field)) << status.error_message();
    }
  }
  // Nothing appeared next to or above the data directory.
  EXPECT_FALSE(fs::exists(fs::path(data_dir_).parent_path() / "outside"));
  EXPECT_FALSE(fs::exists(fs::path(data_dir_) / "outside"));
  EXPECT_FALSE(fs::exists(fs::path(data_dir_) / "models" / "outside"));
}

// ---- Limits ----------------------------------------------------------------------------------
// --max_text_bytes and --max_inputs_per_request: inference_server_test; --max_dataset_bytes and
// --max_queued_jobs: training_jobs_test. The message size is checked by gRPC before any handler.

TEST_F(SecurityTest, MessagesOverMaxMessageBytesAreRefused) {
  BertdProcess server(data_dir_, {"--max_message_bytes=4096"});
  ASSERT_TRUE(server.WaitUntilServing()) << server.log();
  auto inference = v1::InferenceService::NewStub(server.channel());
  auto tokenize = [&](size_t bytes) {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_model("absent");
    request.add_inputs()->set_text(std::string(bytes, 'a'));
    v1::TokenizeResponse response;
    return inference->Tokenize(&context, request, &response);
  };
  grpc::Status big = tokenize(5000);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();
  EXPECT_THAT(big.error_message(), HasSubstr("4096"));
  // Under the limit the request reaches the service (which does not know the model).
  EXPECT_EQ(tokenize(3000).error_code(), grpc::StatusCode::NOT_FOUND);
}

// ---- safe defaults: an exposed listener needs TLS and tokens -----------------------------------

TEST_F(SecurityTest, AnExposedListenerWithoutTlsAndTokensIsRefused) {
  const std::string exposed = "--listen=0.0.0.0:" + std::to_string(PickFreePort());
  {
    BertdProcess server(data_dir_, {exposed});
    const std::string message = "is reachable from other machines but --tls_cert/--tls_key and "
                                "--auth_tokens_file are not set";
    EXPECT_EQ(ExitCodeAfter(server, message), 2);
    EXPECT_THAT(server.log(), HasSubstr(message));
    EXPECT_THAT(server.log(), HasSubstr("--allow_insecure"));
  }
  {
    // TLS alone is not enough: without tokens every caller would be an admin.
    BertdProcess server(data_dir_, {exposed, "--tls_cert=" + Certs().Path("server.crt"),
                                    "--tls_key=" + Certs().Path("server.key")});
    const std::string message = "--auth_tokens_file is not set";
    EXPECT_EQ(ExitCodeAfter(server, message), 2);
    EXPECT_THAT(server.log(), HasSubstr(message));
  }
}

TEST_F(SecurityTest, AnExposedListenerServesWithTlsAndTokensOrWithAllowInsecure) {
  {
    const int port = PickFreePort();
    BertdProcess server(data_dir_, {"--listen=0.0.0.0:" + std::to_string(port),
                                    "--tls_cert=" + Certs().Path("server.crt"),
                                    "--tls_key=" + Certs().Path("server.key"),
                                    "--auth_tokens_file=" + WriteTokenFile(data_dir_),
                                    "--cpu_workers=0"});
    ASSERT_TRUE(WaitServing(TlsChannel(port, false))) << server.log();
    EXPECT_THAT(server.log(), Not(HasSubstr("WARNING")));
  }
  {
    const int port = PickFreePort();
    BertdProcess server(data_dir_, {"--listen=0.0.0.0:" + std::to_string(port),
                                    "--allow_insecure", "--cpu_workers=0"});
    ASSERT_TRUE(WaitServing(PlainChannel(port))) << server.log();
    EXPECT_TRUE(ListModels(PlainChannel(port)).ok());
    EXPECT_THAT(server.log(), HasSubstr("WARNING: --allow_insecure: --listen=0.0.0.0:"));
    EXPECT_THAT(server.log(), HasSubstr("do everything an admin can"));
  }
}

}  // namespace
}  // namespace bertd::testing
