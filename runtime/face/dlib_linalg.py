"""dlib's small dense linear algebra, ported statement by statement (``dlib/matrix/matrix_la.h``).

The face-chip alignment fits the landmarks to dlib's template with dlib's own SVD: LAPACK's would
round differently, and the chips would no longer be bit-identical to ``dlib.get_face_chip``.
"""

from __future__ import annotations

import math

_EPS = 2.220446049250313e-16  # std::numeric_limits<double>::epsilon()
_TINY = 2.2250738585072014e-308  # std::numeric_limits<double>::min()


def _svd4(a):
    """dlib's svd4 (Golub-Reinsch, from the Algol 'Handbook'), SVD_SKINNY_U with V, for m >= n.

    Returns (u, q, v) as nested lists with a = u * diag(q) * v^T. Ported statement by statement so
    that the rounding matches dlib's own build (which has no LAPACK) exactly.
    """
    m, n = len(a), len(a[0])
    eps = _EPS
    tol = _TINY / eps
    u = [list(map(float, row)) for row in a]
    q = [0.0] * n
    e = [0.0] * n
    v = [[0.0] * n for _ in range(n)]
    g = x = 0.0
    l = 0
    for i in range(n):
        e[i] = g
        s = 0.0
        l = i + 1
        for j in range(i, m):
            s += u[j][i] * u[j][i]
        if s < tol:
            g = 0.0
        else:
            f = u[i][i]
            g = math.sqrt(s) if f < 0 else -math.sqrt(s)
            h = f * g - s
            u[i][i] = f - g
            for j in range(l, n):
                s = 0.0
                for k in range(i, m):
                    s += u[k][i] * u[k][j]
                f = s / h
                for k in range(i, m):
                    u[k][j] += f * u[k][i]
        q[i] = g
        s = 0.0
        for j in range(l, n):
            s += u[i][j] * u[i][j]
        if s < tol:
            g = 0.0
        else:
            f = u[i][i + 1]
            g = math.sqrt(s) if f < 0 else -math.sqrt(s)
            h = f * g - s
            u[i][i + 1] = f - g
            for j in range(l, n):
                e[j] = u[i][j] / h
            for j in range(l, m):
                s = 0.0
                for k in range(l, n):
                    s += u[j][k] * u[i][k]
                for k in range(l, n):
                    u[j][k] += s * e[k]
        y = abs(q[i]) + abs(e[i])
        if y > x:
            x = y

    # accumulation of right-hand transformations
    for i in range(n - 1, -1, -1):
        if g != 0.0:
            h = u[i][i + 1] * g
            for j in range(l, n):
                v[j][i] = u[i][j] / h
            for j in range(l, n):
                s = 0.0
                for k in range(l, n):
                    s += u[i][k] * v[k][j]
                for k in range(l, n):
                    v[k][j] += s * v[k][i]
        for j in range(l, n):
            v[i][j] = v[j][i] = 0.0
        v[i][i] = 1.0
        g = e[i]
        l = i

    # accumulation of left-hand transformations (skinny U is m x n)
    for i in range(n - 1, -1, -1):
        l = i + 1
        g = q[i]
        for j in range(l, n):
            u[i][j] = 0.0
        if g != 0.0:
            h = u[i][i] * g
            for j in range(l, n):
                s = 0.0
                for k in range(l, m):
                    s += u[k][i] * u[k][j]
                f = s / h
                for k in range(i, m):
                    u[k][j] += f * u[k][i]
            for j in range(i, m):
                u[j][i] /= g
        else:
            for j in range(i, m):
                u[j][i] = 0.0
        u[i][i] += 1.0

    # diagonalization of the bidiagonal form
    eps *= x
    for k in range(n - 1, -1, -1):
        iters = 0
        while True:  # test_f_splitting
            cancel = False
            for l in range(k, -1, -1):
                if abs(e[l]) <= eps:
                    break
                if abs(q[l - 1]) <= eps:
                    cancel = True
                    break
            else:  # not reachable: e[0] is always 0
                cancel = True
            if cancel:
                c, s = 0.0, 1.0
                l1 = l - 1
                for i in range(l, k + 1):
                    f = s * e[i]
                    e[i] *= c
                    if abs(f) <= eps:
                        break
                    g = q[i]
                    h = q[i] = math.sqrt(f * f + g * g)
                    c = g / h
                    s = -f / h
                    for j in range(m):
                        y = u[j][l1]
                        z = u[j][i]
                        u[j][l1] = y * c + z * s
                        u[j][i] = -y * s + z * c
            # test_f_convergence
            z = q[k]
            if l == k:
                break
            iters += 1
            if iters > 300:
                return u, q, v  # dlib gives up silently as well (returns an error code nobody reads)
            x = q[l]
            y = q[k - 1]
            g = e[k - 1]
            h = e[k]
            f = ((y - z) * (y + z) + (g - h) * (g + h)) / (2 * h * y)
            g = math.sqrt(f * f + 1.0)
            f = ((x - z) * (x + z) + h * (y / ((f - g) if f < 0 else (f + g)) - h)) / x
            c = s = 1.0
            for i in range(l + 1, k + 1):
                g = e[i]
                y = q[i]
                h = s * g
                g *= c
                e[i - 1] = z = math.sqrt(f * f + h * h)
                c = f / z
                s = h / z
                f = x * c + g * s
                g = -x * s + g * c
                h = y * s
                y *= c
                for j in range(n):
                    x = v[j][i - 1]
                    z = v[j][i]
                    v[j][i - 1] = x * c + z * s
                    v[j][i] = -x * s + z * c
                q[i - 1] = z = math.sqrt(f * f + h * h)
                if z != 0:
                    c = f / z
                    s = h / z
                f = c * g + s * y
                x = -s * g + c * y
                for j in range(m):
                    y = u[j][i - 1]
                    z = u[j][i]
                    u[j][i - 1] = y * c + z * s
                    u[j][i] = -y * s + z * c
            e[l] = 0.0
            e[k] = f
            q[k] = x
        # convergence
        if z < 0.0:
            q[k] = -z
            for j in range(n):
                v[j][k] = -v[j][k]
    return u, q, v


def _dot_rows(a, b_t, r, c, n):
    """sum_i a[r][i] * b_t[c][i], accumulated left to right as dlib's matrix multiply does."""
    acc = a[r][0] * b_t[c][0]
    for i in range(1, n):
        acc += a[r][i] * b_t[c][i]
    return acc


def similarity_transform(src, dst):
    """find_similarity_transform(from_points, to_points): (M 2x2 as nested lists, b)."""
    n = len(src)
    mfx = mfy = mtx = mty = 0.0
    for (fx, fy), (tx, ty) in zip(src, dst):
        mfx += fx
        mfy += fy
        mtx += tx
        mty += ty
    mfx /= n
    mfy /= n
    mtx /= n
    mty /= n
    sigma_from = 0.0
    cov = [[0.0, 0.0], [0.0, 0.0]]
    for (fx, fy), (tx, ty) in zip(src, dst):
        dfx, dfy = fx - mfx, fy - mfy
        dtx, dty = tx - mtx, ty - mty
        sigma_from += dfx * dfx + dfy * dfy
        cov[0][0] += dtx * dfx
        cov[0][1] += dtx * dfy
        cov[1][0] += dty * dfx
        cov[1][1] += dty * dfy
    sigma_from /= n
    inv_n = 1.0 / n  # dlib's matrix /= scalar multiplies by the reciprocal
    cov = [[cov[0][0] * inv_n, cov[0][1] * inv_n], [cov[1][0] * inv_n, cov[1][1] * inv_n]]

    u, d, v = _svd4(cov)
    s = [1.0, 1.0]
    det_cov = cov[0][0] * cov[1][1] - cov[0][1] * cov[1][0]
    det_u = u[0][0] * u[1][1] - u[0][1] * u[1][0]
    det_v = v[0][0] * v[1][1] - v[0][1] * v[1][0]
    if det_cov < 0 or (det_cov == 0 and det_u * det_v < 0):
        if d[1] < d[0]:
            s[1] = -1.0
        else:
            s[0] = -1.0
    # r = (u * diag(s)) * v^T; multiplying by the 0 off-diagonal entries of s adds exact zeros.
    us = [[u[i][0] * s[0] + u[i][1] * 0.0, u[i][0] * 0.0 + u[i][1] * s[1]] for i in range(2)]
    r = [[_dot_rows(us, v, i, j, 2) for j in range(2)] for i in range(2)]
    c = 1.0
    if sigma_from != 0:
        c = 1.0 / sigma_from * (d[0] * s[0] + d[1] * s[1])
    # c*r*mean_from: dlib pulls the scalar out of the product, (r @ mean_from) * c
    rm0 = r[0][0] * mfx + r[0][1] * mfy
    rm1 = r[1][0] * mfx + r[1][1] * mfy
    b = (mtx - rm0 * c, mty - rm1 * c)
    m = [[r[0][0] * c, r[0][1] * c], [r[1][0] * c, r[1][1] * c]]
    return m, b


_PINV_CACHE: dict[tuple[int, int], list] = {}


def pinv_corners(rows: int, cols: int):
    """pinv(P) for P = [[0, cols-1, 0], [0, 0, rows-1], [1, 1, 1]] (the chip's tl, tr, bl corners)."""
    key = (rows, cols)
    if key not in _PINV_CACHE:
        p = [[0.0, float(cols - 1), 0.0], [0.0, 0.0, float(rows - 1)], [1.0, 1.0, 1.0]]
        u, w, v = _svd4(p)
        wmax = max(w)
        eps = _EPS * 3 * wmax
        inv_w = [0.0 if not (x >= eps or x <= -eps) else 1.0 / x for x in w]
        scaled_v = [[v[r][c] * inv_w[c] for c in range(3)] for r in range(3)]
        _PINV_CACHE[key] = [[_dot_rows(scaled_v, u, r, c, 3) for c in range(3)] for r in range(3)]
    return _PINV_CACHE[key]
