#include <stdio.h>
int main(void) { puts("ragd"); return 0; }
