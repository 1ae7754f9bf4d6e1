/* Build options of the Vigil C core for this sketch (read by vigil_txq.h in every file that
 * includes it, so the sketch and vigil_txq.c agree on the ring's layout). */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#define VIGIL_TXQ_SLOTS 16u        /* unacknowledged frames kept for resend (16 x 60 B + 44: 1004 B on the host) */
#define VIGIL_TXQ_MAX_CHANNELS 6u  /* this sketch sends the 6 channels of rotating-v1 */

#endif
