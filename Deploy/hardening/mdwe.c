/* Deploy/hardening/mdwe.c: exec a command with PR_SET_MDWE (refuse W+X memory), the kernel form of
   MemoryDenyWriteExecute=; prints whether a W+X mapping is refused, to prove it is in force. */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <sys/mman.h>
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
int main(int argc, char **argv) {
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) { perror("prctl(PR_SET_MDWE)"); return 111; }
    /* prove it is active: a W+X mapping must now fail */
    void *p = mmap(0, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    fprintf(stderr, "mdwe: W+X mmap %s\n", p == MAP_FAILED ? "refused (MDWE active)" : "ALLOWED (MDWE inactive!)");
    execv(argv[1], argv + 1);
    perror("execv"); return 112;
}
