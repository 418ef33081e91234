// fg_emu PTX: executes the inline-PTX statements of the CUDA sources. The asm template text itself is
// parsed (opcode, modifiers, operand lists), so a wrong operand order or modifier in the source is
// executed as written. Each supported instruction is a warp collective, emulated from the PTX ISA
// reference ("Warp-level matrix instructions": the ldmatrix row/thread distribution and the
// mma.m16n8k16 / m16n8k8 fragment layouts for .f16 / .bf16 with .f32 accumulators). These
// tables are written here from the ISA, independently of native/cuda/indexing.cuh, so that a
// mistake in either shows up as a wrong result. Anything else is a kernel fault naming the
// instruction.
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "emu_internal.h"
#include "fg_emu.h"

#if defined(__SANITIZE_THREAD__) || defined(FACEGAN_EMU_TSAN)
extern "C" void __tsan_read16(void* addr);
#define FG_EMU_TSAN_READ16(p) __tsan_read16(p)
#else
#define FG_EMU_TSAN_READ16(p) (void)(p)
#endif

namespace fg_emu {
namespace {

struct Operand {
  enum Kind { Reg, Vec, Addr, Imm } kind = Reg;
  std::vector<int> regs;  // operand numbers (%N)
  int64_t offset = 0;     // Addr: [%N+offset]; Imm: value
};

struct Instr {
  std::string opcode;  // with modifiers, e.g. "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"
  std::vector<std::string> mods;
  std::vector<Operand> ops;
  // Decoded once (decode()): which emulation runs and with what parameters.
  enum Kind { Unknown, Ldmatrix, Mma } kind = Unknown;
  std::string error;  // why the form is not supported (reported when executed)
  const void* tag = nullptr;
};

struct Program {
  std::vector<Instr> instrs;
  std::string error;
};

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r')) --b;
  return s.substr(a, b - a);
}

bool parse_reg(const std::string& t, int* n) {
  if (t.size() < 2 || t[0] != '%') return false;
  for (size_t i = 1; i < t.size(); ++i)
    if (t[i] < '0' || t[i] > '9') return false;
  *n = std::stoi(t.substr(1));
  return true;
}

Program parse(const char* tmpl) {
  Program p;
  std::string text(tmpl);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    const std::string stmt = trim(text.substr(start, end - start));
    start = end + 1;
    if (stmt.empty()) continue;
    Instr in;
    size_t sp = stmt.find_first_of(" \t\n");
    in.opcode = stmt.substr(0, sp);
    {
      size_t a = 0;
      for (;;) {
        const size_t b = in.opcode.find('.', a);
        in.mods.push_back(in.opcode.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
      }
    }
    const std::string rest = sp == std::string::npos ? "" : trim(stmt.substr(sp));
    // Operands separated by commas outside {} and [].
    int depth = 0;
    std::string cur;
    std::vector<std::string> parts;
    for (char c : rest) {
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      if (c == ',' && depth == 0) {
        parts.push_back(trim(cur));
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!trim(cur).empty()) parts.push_back(trim(cur));
    for (const std::string& t : parts) {
      Operand o;
      if (t.front() == '{') {
        o.kind = Operand::Vec;
        std::string inner = t.substr(1, t.size() - 2);
        size_t a = 0;
        while (a <= inner.size()) {
          size_t b = inner.find(',', a);
          if (b == std::string::npos) b = inner.size();
          int n;
          if (!parse_reg(trim(inner.substr(a, b - a)), &n)) {
            p.error = "cannot parse vector operand " + t;
            return p;
          }
          o.regs.push_back(n);
          a = b + 1;
        }
      } else if (t.front() == '[') {
        o.kind = Operand::Addr;
        std::string inner = trim(t.substr(1, t.size() - 2));
        const size_t plus = inner.find('+');
        int n;
        if (!parse_reg(trim(inner.substr(0, plus)), &n)) {
          p.error = "cannot parse address operand " + t;
          return p;
        }
        o.regs.push_back(n);
        if (plus != std::string::npos) o.offset = std::stoll(trim(inner.substr(plus + 1)), nullptr, 0);
      } else {
        int n;
        if (parse_reg(t, &n)) {
          o.kind = Operand::Reg;
          o.regs.push_back(n);
        } else {
          o.kind = Operand::Imm;
          o.offset = std::stoll(t, nullptr, 0);
        }
      }
      in.ops.push_back(o);
    }
    p.instrs.push_back(in);
  }
  return p;
}

bool has_mod(const Instr& in, const char* m) {
  for (const std::string& s : in.mods)
    if (s == m) return true;
  return false;
}

// ---- operand access
struct Ops {
  const PtxOperand* p;
  int n;
  const PtxOperand& operator[](int i) const { return p[i]; }
};

uint64_t read_op(const Ops& ops, int n) {
  if (n < 0 || n >= ops.n) fail_kernel("PTX operand %" + std::to_string(n) + " does not exist");
  const PtxOperand& o = ops[n];
  if (o.mode == 'i') return o.value;
  if (o.mode == 'b') {
    uint64_t v = 0;
    memcpy(&v, o.ptr, o.type == 'l' || o.type == 'd' ? 8 : o.type == 'h' ? 2 : 4);
    return v;
  }
  fail_kernel("PTX reads write-only operand %" + std::to_string(n));
}
void write_op(const Ops& ops, int n, uint64_t v) {
  if (n < 0 || n >= ops.n) fail_kernel("PTX operand %" + std::to_string(n) + " does not exist");
  const PtxOperand& o = ops[n];
  if (o.mode == 'i') fail_kernel("PTX writes input operand %" + std::to_string(n));
  memcpy(o.ptr, &v, o.type == 'l' || o.type == 'd' ? 8 : o.type == 'h' ? 2 : 4);
}

float f32_of(uint64_t bits) {
  const uint32_t b = (uint32_t)bits;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
uint64_t bits_of(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
float elem16(uint32_t reg, int hi, bool bf16) {
  const uint16_t h = (uint16_t)(hi ? reg >> 16 : reg & 0xffffu);
  if (bf16) {
    __nv_bfloat16 x;
    x.__x = h;
    return __bfloat162float(x);
  }
  __half x;
  x.__x = h;
  return __half2float(x);
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared{::cta}.b16
// Lane slot: in[0] = shared address; out[q] = the 32-bit register of matrix q.
struct LdsmTag {
  int nmat;
  bool trans;
};
void compute_ldmatrix(LaneSlot* const* lanes, unsigned, const void* tag) {
  const LdsmTag* t = static_cast<const LdsmTag*>(tag);
  // Matrix q's row r (8 b16 elements, 16 bytes) is at the address supplied by lane 8q + r.
  uint16_t m[4][8][8];
  for (int q = 0; q < t->nmat; ++q)
    for (int r = 0; r < 8; ++r) {
      const int src = 8 * q + r;
      if (!lanes[src]) fail_kernel("ldmatrix: lane " + std::to_string(src) + " (which supplies a row address) is not in the mask");
      const void* p = shared_window_ptr((unsigned)lanes[src]->in[0], 16);
      memcpy(m[q][r], p, 16);
    }
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const int row = l / 4, col = 2 * (l % 4);
    for (int q = 0; q < t->nmat; ++q) {
      uint16_t lo, hi;
      if (!t->trans) {  // thread l: row l/4, elements 2(l%4), 2(l%4)+1
        lo = m[q][row][col];
        hi = m[q][row][col + 1];
      } else {  // transposed: column l/4 of rows 2(l%4), 2(l%4)+1
        lo = m[q][col][row];
        hi = m[q][col + 1][row];
      }
      lanes[l]->out[q] = (uint64_t)lo | ((uint64_t)hi << 16);
    }
  }
}
const LdsmTag kLdsm[2][5] = {{{0, false}, {1, false}, {2, false}, {0, false}, {4, false}},
                             {{0, true}, {1, true}, {2, true}, {0, true}, {4, true}}};

void decode_ldmatrix(Instr& in) {
  if (!has_mod(in, "sync") || !has_mod(in, "aligned") || !has_mod(in, "m8n8") || !has_mod(in, "b16") ||
      !(has_mod(in, "shared") || has_mod(in, "shared::cta"))) {
    in.error = "unsupported ldmatrix form: " + in.opcode;
    return;
  }
  const int nmat = has_mod(in, "x4") ? 4 : has_mod(in, "x2") ? 2 : has_mod(in, "x1") ? 1 : 0;
  if (!nmat) {
    in.error = "ldmatrix without .x1/.x2/.x4: " + in.opcode;
    return;
  }
  if (in.ops.size() != 2 || in.ops[0].kind != Operand::Vec || (int)in.ops[0].regs.size() != nmat ||
      in.ops[1].kind != Operand::Addr) {
    in.error = "ldmatrix operands do not match " + in.opcode;
    return;
  }
  in.kind = Instr::Ldmatrix;
  in.tag = &kLdsm[has_mod(in, "trans")][nmat];
}

void exec_ldmatrix(const Instr& in, const Ops& ops) {
  const int nmat = static_cast<const LdsmTag*>(in.tag)->nmat;
  LaneSlot* me = lane_slot();
  const uint32_t addr = (uint32_t)(read_op(ops, in.ops[1].regs[0]) + in.ops[1].offset);
  me->in[0] = addr;
  collective(16, 0xffffffffu, in.tag, compute_ldmatrix);
  // The warp read the rows; tell ThreadSanitizer that this lane read the row it addressed (lanes
  // beyond the matrices' count supply no address).
  if ((int)(tls_thread->linear % 32) < 8 * nmat)
    FG_EMU_TSAN_READ16(shared_window_ptr(addr, 16));
  me = lane_slot();
  for (int q = 0; q < nmat; ++q) write_op(ops, in.ops[0].regs[q], me->out[q]);
}

// ---- mma.sync.aligned.m16n8k{8,16}.row.col.f32.{f16,bf16}.{f16,bf16}.f32
// Lane slot: in[0..3] = A registers, in[4..5] = B registers, in[6..9] = C (f32 bits); out[0..3] = D.
struct MmaTag {
  int k;      // 8 or 16
  bool bf16;
};
const MmaTag kMma[2][2] = {{{8, false}, {16, false}}, {{8, true}, {16, true}}};

void compute_mma(LaneSlot* const* lanes, unsigned, const void* tag) {
  const MmaTag* t = static_cast<const MmaTag*>(tag);
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) fail_kernel("mma.sync needs all 32 lanes");
    const int g = l >> 2, tg = l & 3;
    const uint64_t* in = lanes[l]->in;
    if (t->k == 16) {
      // A: a0..a7 in 4 registers (2 per register, lower half first).
      for (int i = 0; i < 8; ++i) {
        const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
        const int col = tg * 2 + (i & 1) + (i >= 4 ? 8 : 0);
        A[row][col] = elem16((uint32_t)in[i / 2], i & 1, t->bf16);
      }
      // B: b0..b3 in 2 registers.
      for (int i = 0; i < 4; ++i) {
        const int row = tg * 2 + (i & 1) + (i >= 2 ? 8 : 0);
        B[row][g] = elem16((uint32_t)in[4 + i / 2], i & 1, t->bf16);
      }
    } else {
      for (int i = 0; i < 4; ++i) {
        const int row = i < 2 ? g : g + 8;
        const int col = tg * 2 + (i & 1);
        A[row][col] = elem16((uint32_t)in[i / 2], i & 1, t->bf16);
      }
      for (int i = 0; i < 2; ++i) B[tg * 2 + i][g] = elem16((uint32_t)in[4], i, t->bf16);
    }
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? g : g + 8;
      const int col = tg * 2 + (i & 1);
      C[row][col] = f32_of(in[6 + i]);
    }
  }
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, tg = l & 3;
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? g : g + 8;
      const int col = tg * 2 + (i & 1);
      float acc = C[row][col];
      for (int k = 0; k < t->k; ++k) acc += A[row][k] * B[k][col];
      lanes[l]->out[i] = bits_of(acc);
    }
  }
}

void decode_mma(Instr& in) {
  const bool k16 = has_mod(in, "m16n8k16"), k8 = has_mod(in, "m16n8k8");
  const bool f16 = in.mods.size() == 10 && in.mods[7] == "f16" && in.mods[8] == "f16";
  const bool bf16 = in.mods.size() == 10 && in.mods[7] == "bf16" && in.mods[8] == "bf16";
  // mma . sync . aligned . shape . row . col . dtype(f32) . atype . btype . ctype(f32)
  if (!has_mod(in, "sync") || !has_mod(in, "aligned") || (!k16 && !k8) || in.mods.size() != 10 ||
      in.mods[4] != "row" || in.mods[5] != "col" || in.mods[6] != "f32" || in.mods[9] != "f32" || !(f16 || bf16)) {
    in.error = "unsupported mma form: " + in.opcode;
    return;
  }
  const size_t na = k16 ? 4 : 2, nb = k16 ? 2 : 1;
  if (in.ops.size() != 4 || in.ops[0].regs.size() != 4 || in.ops[1].regs.size() != na || in.ops[2].regs.size() != nb ||
      in.ops[3].regs.size() != 4) {
    in.error = "mma operands do not match " + in.opcode;
    return;
  }
  in.kind = Instr::Mma;
  in.tag = &kMma[bf16][k16];
}

void exec_mma(const Instr& in, const Ops& ops) {
  LaneSlot* me = lane_slot();
  const size_t na = in.ops[1].regs.size(), nb = in.ops[2].regs.size();
  for (size_t i = 0; i < na; ++i) me->in[i] = read_op(ops, in.ops[1].regs[i]);
  for (size_t i = 0; i < nb; ++i) me->in[4 + i] = read_op(ops, in.ops[2].regs[i]);
  for (int i = 0; i < 4; ++i) me->in[6 + i] = read_op(ops, in.ops[3].regs[i]);
  collective(17, 0xffffffffu, in.tag, compute_mma);
  me = lane_slot();
  for (int i = 0; i < 4; ++i) write_op(ops, in.ops[0].regs[i], me->out[i]);
}

std::mutex g_cache_mu;
std::map<const char*, Program> g_cache;

const Program& program(const char* tmpl) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = g_cache.find(tmpl);
  if (it == g_cache.end()) {
    Program p = parse(tmpl);
    for (Instr& in : p.instrs) {
      const std::string& op0 = in.mods.empty() ? in.opcode : in.mods[0];
      if (op0 == "ldmatrix") decode_ldmatrix(in);
      else if (op0 == "mma") decode_mma(in);
    }
    it = g_cache.emplace(tmpl, std::move(p)).first;
  }
  return it->second;
}

}  // namespace

void ptx(const char* tmpl, std::initializer_list<PtxOperand> list) {
  const Ops ops{list.begin(), (int)list.size()};
  const Program& p = program(tmpl);
  if (!p.error.empty()) fail_kernel("PTX: " + p.error + " in \"" + tmpl + "\"");
  for (const Instr& in : p.instrs) {
    switch (in.kind) {
      case Instr::Ldmatrix: exec_ldmatrix(in, ops); break;
      case Instr::Mma: exec_mma(in, ops); break;
      default: fail_kernel(in.error.empty() ? "PTX instruction not emulated: " + in.opcode : in.error);
    }
  }
}

}  // namespace fg_emu
