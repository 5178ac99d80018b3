#include <cblas.h>
// Declared by OpenBLAS's cblas.h on Debian; repeated here for clarity of what we use.
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
