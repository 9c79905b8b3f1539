# pythran export total_mass(float64[:])
def total_mass(m):
    s = 0.0
    for i in range(m.shape[0]):
        s += m[i]
    return s
