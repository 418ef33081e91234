#include "backend.h"
namespace facegan {
std::unique_ptr<Backend> create_cpu_backend() { return create_cpu_reference_backend(); }
}
