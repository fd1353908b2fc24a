#ifndef BERTD_API_ACCESS_H_
#define BERTD_API_ACCESS_H_

#include <string>
#include <vector>

#include "auth/roles.h"

namespace bertd::api {

// The role of every RPC as its .proto declares it (option bertd.v1.required_role), read from the
// generated descriptors of bertd's services: the one place roles are written down.
auth::AccessTable DeclaredAccess();

// Every RPC of bertd's services ("/bertd.v1.JobService/SubmitJob"), with or without a role.
std::vector<std::string> AllMethods();
// The RPCs that declare no role (a test keeps this empty; at run time they need admin).
std::vector<std::string> MethodsWithoutRole();

}  // namespace bertd::api

#endif  // BERTD_API_ACCESS_H_
