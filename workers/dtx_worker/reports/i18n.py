"""Report wording in the mobile app's eight languages, and locale-aware dates and numbers (babel/CLDR)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache

from babel import Locale as BabelLocale
from babel.dates import format_date, format_interval, format_skeleton, format_time
from babel.numbers import format_decimal, format_percent, get_minus_sign_symbol, get_plus_sign_symbol

from .model import LOCALES, Locale, PeriodKind, ShotType

DEFAULT_LOCALE: Locale = "en"


def resolve_locale(*candidates: str | None) -> Locale:
    """The first supported language among the candidates (the request's, then the profile's), else English.

    Accepts tags such as `ko-KR`, `pt_BR`, `zh-Hans-CN`.
    """
    for tag in candidates:
        if not tag:
            continue
        lang = tag.replace("_", "-").split("-", 1)[0].lower()
        for loc in LOCALES:
            if loc == lang:
                return loc
    return DEFAULT_LOCALE


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every string a report draws. Placeholders are `str.format` fields."""

    title_monthly: str
    title_weekly: str
    prepared_for: str
    period: str
    devices: str
    time_zone: str
    generated: str  # {when}
    key_figures: str
    sessions: str
    working_minutes: str
    active_days: str
    current_streak: str
    longest_streak: str
    goal_achievement: str
    unit_min: str
    day_one: str
    day_other: str
    active_days_of: str  # {total}
    no_goal: str
    goal_progress: str  # {achieved} {target}
    vs_previous: str  # {change}
    no_previous: str
    daily_title: str
    by_shot_type: str
    by_mode: str
    by_level: str
    level: str  # {n}
    shot_led: str
    col_minutes: str
    col_sessions: str
    col_share: str
    comparison_title: str
    col_this: str
    col_previous: str
    col_change: str
    per_active_day: str
    per_session: str
    previous_range: str  # {range}
    goals_title: str
    goal_weekly: str
    goal_monthly: str
    devices_title: str
    col_device: str
    col_model: str
    col_serial: str
    col_firmware: str
    firmware_unknown: str
    more_devices: str  # {n}
    note_empty_title: str
    note_empty: str  # {range}
    note_sparse_title: str
    note_sparse: str
    no_data: str
    # in-app notifications of finished exports (reports use their own title)
    export_sessions_ready: str
    export_data_ready: str
    exported_on: str  # {date}

    def title(self, kind: PeriodKind) -> str:
        return self.title_monthly if kind is PeriodKind.MONTHLY else self.title_weekly

    def goal_name(self, kind: PeriodKind) -> str:
        return self.goal_monthly if kind is PeriodKind.MONTHLY else self.goal_weekly

    def shot_name(self, shot: ShotType) -> str:
        return ("U-Shot", "E-Shot", self.shot_led)[shot]


CATALOGS: dict[Locale, Catalog] = {
    "en": Catalog(
        title_monthly="Monthly usage report",
        title_weekly="Weekly usage report",
        prepared_for="Prepared for",
        period="Period",
        devices="Devices",
        time_zone="Time zone",
        generated="Generated {when}",
        key_figures="Key figures",
        sessions="Sessions",
        working_minutes="Working minutes",
        active_days="Active days",
        current_streak="Current streak",
        longest_streak="Longest streak",
        goal_achievement="Goal achievement",
        unit_min="min",
        day_one="day",
        day_other="days",
        active_days_of="of {total} days",
        no_goal="No goal set",
        goal_progress="{achieved} of {target} min",
        vs_previous="{change} vs. previous period",
        no_previous="No earlier data to compare",
        daily_title="Working minutes per day",
        by_shot_type="By treatment type",
        by_mode="By mode",
        by_level="By level",
        level="Level {n}",
        shot_led="LED Care",
        col_minutes="Minutes",
        col_sessions="Sessions",
        col_share="Share",
        comparison_title="Compared with the previous period",
        col_this="This period",
        col_previous="Previous period",
        col_change="Change",
        per_active_day="Minutes per active day",
        per_session="Minutes per session",
        previous_range="Previous period: {range}",
        goals_title="Goals",
        goal_weekly="Weekly goal",
        goal_monthly="Monthly goal",
        devices_title="Devices",
        col_device="Device",
        col_model="Model",
        col_serial="Serial number",
        col_firmware="Firmware",
        firmware_unknown="Unknown",
        more_devices="+{n} more",
        note_empty_title="No sessions in this period",
        note_empty="No sessions were recorded for {range}. Once your device syncs with the app, "
        "your usage will appear in the next report.",
        note_sparse_title="Only a little data in this period",
        note_sparse="Only a few sessions were recorded in this period, so comparisons and trends "
        "may not mean much yet.",
        no_data="No sessions in this period",
        export_sessions_ready="Your sessions export is ready",
        export_data_ready="Your data export is ready",
        exported_on="Exported on {date}.",
    ),
    "ko": Catalog(
        title_monthly="월간 사용 리포트",
        title_weekly="주간 사용 리포트",
        prepared_for="사용자",
        period="기간",
        devices="기기",
        time_zone="시간대",
        generated="생성: {when}",
        key_figures="주요 지표",
        sessions="사용 횟수",
        working_minutes="사용 시간(분)",
        active_days="사용한 날",
        current_streak="현재 연속 사용",
        longest_streak="최장 연속 사용",
        goal_achievement="목표 달성률",
        unit_min="분",
        day_one="일",
        day_other="일",
        active_days_of="전체 {total}일 중",
        no_goal="설정된 목표 없음",
        goal_progress="{target}분 중 {achieved}분",
        vs_previous="이전 기간 대비 {change}",
        no_previous="비교할 이전 기록 없음",
        daily_title="일별 사용 시간(분)",
        by_shot_type="케어 유형별",
        by_mode="모드별",
        by_level="레벨별",
        level="레벨 {n}",
        shot_led="LED 케어",
        col_minutes="시간(분)",
        col_sessions="횟수",
        col_share="비율",
        comparison_title="이전 기간과 비교",
        col_this="이번 기간",
        col_previous="이전 기간",
        col_change="변화",
        per_active_day="사용한 날 하루 평균(분)",
        per_session="1회 평균(분)",
        previous_range="이전 기간: {range}",
        goals_title="목표",
        goal_weekly="주간 목표",
        goal_monthly="월간 목표",
        devices_title="기기",
        col_device="기기",
        col_model="모델",
        col_serial="시리얼 번호",
        col_firmware="펌웨어",
        firmware_unknown="알 수 없음",
        more_devices="외 {n}대",
        note_empty_title="이 기간에는 사용 기록이 없습니다",
        note_empty="{range} 동안 기록된 사용이 없습니다. 기기를 앱과 동기화하면 다음 리포트에 사용 기록이 표시됩니다.",
        note_sparse_title="이 기간의 데이터가 많지 않습니다",
        note_sparse="이 기간에는 사용 기록이 적어 비교와 추세가 아직 큰 의미가 없을 수 있습니다.",
        no_data="이 기간에는 사용 기록이 없습니다",
        export_sessions_ready="세션 내보내기가 준비되었습니다",
        export_data_ready="데이터 내보내기가 준비되었습니다",
        exported_on="{date}에 내보냈습니다.",
    ),
    "ja": Catalog(
        title_monthly="月間使用レポート",
        title_weekly="週間使用レポート",
        prepared_for="ご利用者",
        period="期間",
        devices="デバイス",
        time_zone="タイムゾーン",
        generated="作成日時: {when}",
        key_figures="主な指標",
        sessions="使用回数",
        working_minutes="使用時間（分）",
        active_days="使用日数",
        current_streak="現在の連続使用",
        longest_streak="最長の連続使用",
        goal_achievement="目標達成率",
        unit_min="分",
        day_one="日",
        day_other="日",
        active_days_of="{total}日中",
        no_goal="目標は未設定です",
        goal_progress="{target}分中 {achieved}分",
        vs_previous="前期間比 {change}",
        no_previous="比較できる前期間のデータなし",
        daily_title="日別の使用時間（分）",
        by_shot_type="ケアの種類別",
        by_mode="モード別",
        by_level="レベル別",
        level="レベル{n}",
        shot_led="LEDケア",
        col_minutes="時間（分）",
        col_sessions="回数",
        col_share="割合",
        comparison_title="前期間との比較",
        col_this="今期間",
        col_previous="前期間",
        col_change="増減",
        per_active_day="使用日1日あたり（分）",
        per_session="1回あたり（分）",
        previous_range="前期間: {range}",
        goals_title="目標",
        goal_weekly="週間目標",
        goal_monthly="月間目標",
        devices_title="デバイス",
        col_device="デバイス",
        col_model="モデル",
        col_serial="シリアル番号",
        col_firmware="ファームウェア",
        firmware_unknown="不明",
        more_devices="ほか{n}台",
        note_empty_title="この期間の使用記録はありません",
        note_empty="{range}の使用記録はありません。デバイスをアプリと同期すると、次回のレポートに使用状況が表示されます。",
        note_sparse_title="この期間のデータはわずかです",
        note_sparse="この期間は使用記録が少ないため、比較や傾向はまだ参考程度です。",
        no_data="この期間の使用記録はありません",
        export_sessions_ready="セッションのエクスポートが完了しました",
        export_data_ready="データのエクスポートが完了しました",
        exported_on="{date}にエクスポートしました。",
    ),
    "zh": Catalog(
        title_monthly="月度使用报告",
        title_weekly="每周使用报告",
        prepared_for="用户",
        period="统计周期",
        devices="设备",
        time_zone="时区",
        generated="生成时间：{when}",
        key_figures="关键指标",
        sessions="使用次数",
        working_minutes="使用时长（分钟）",
        active_days="使用天数",
        current_streak="当前连续使用",
        longest_streak="最长连续使用",
        goal_achievement="目标完成率",
        unit_min="分钟",
        day_one="天",
        day_other="天",
        active_days_of="共 {total} 天",
        no_goal="未设置目标",
        goal_progress="{achieved} / {target} 分钟",
        vs_previous="较上一周期 {change}",
        no_previous="没有可对比的上一周期数据",
        daily_title="每日使用时长（分钟）",
        by_shot_type="按护理类型",
        by_mode="按模式",
        by_level="按档位",
        level="{n} 档",
        shot_led="LED 护理",
        col_minutes="时长（分钟）",
        col_sessions="次数",
        col_share="占比",
        comparison_title="与上一周期对比",
        col_this="本周期",
        col_previous="上一周期",
        col_change="变化",
        per_active_day="每个使用日平均（分钟）",
        per_session="每次平均（分钟）",
        previous_range="上一周期：{range}",
        goals_title="目标",
        goal_weekly="每周目标",
        goal_monthly="每月目标",
        devices_title="设备",
        col_device="设备",
        col_model="型号",
        col_serial="序列号",
        col_firmware="固件版本",
        firmware_unknown="未知",
        more_devices="另有 {n} 台",
        note_empty_title="本周期没有使用记录",
        note_empty="{range}期间没有使用记录。设备与应用同步后，使用情况将显示在下一份报告中。",
        note_sparse_title="本周期数据较少",
        note_sparse="本周期的使用记录较少，对比和趋势仅供参考。",
        no_data="本周期没有使用记录",
        export_sessions_ready="您的使用记录导出已完成",
        export_data_ready="您的数据导出已完成",
        exported_on="导出日期：{date}",
    ),
    "es": Catalog(
        title_monthly="Informe de uso mensual",
        title_weekly="Informe de uso semanal",
        prepared_for="Preparado para",
        period="Periodo",
        devices="Dispositivos",
        time_zone="Zona horaria",
        generated="Generado el {when}",
        key_figures="Cifras clave",
        sessions="Sesiones",
        working_minutes="Minutos de uso",
        active_days="Días activos",
        current_streak="Racha actual",
        longest_streak="Racha más larga",
        goal_achievement="Cumplimiento del objetivo",
        unit_min="min",
        day_one="día",
        day_other="días",
        active_days_of="de {total} días",
        no_goal="Sin objetivo definido",
        goal_progress="{achieved} de {target} min",
        vs_previous="{change} respecto al periodo anterior",
        no_previous="Sin datos anteriores para comparar",
        daily_title="Minutos de uso por día",
        by_shot_type="Por tipo de tratamiento",
        by_mode="Por modo",
        by_level="Por nivel",
        level="Nivel {n}",
        shot_led="Cuidado LED",
        col_minutes="Minutos",
        col_sessions="Sesiones",
        col_share="Porcentaje",
        comparison_title="Comparación con el periodo anterior",
        col_this="Este periodo",
        col_previous="Periodo anterior",
        col_change="Variación",
        per_active_day="Minutos por día activo",
        per_session="Minutos por sesión",
        previous_range="Periodo anterior: {range}",
        goals_title="Objetivos",
        goal_weekly="Objetivo semanal",
        goal_monthly="Objetivo mensual",
        devices_title="Dispositivos",
        col_device="Dispositivo",
        col_model="Modelo",
        col_serial="Número de serie",
        col_firmware="Firmware",
        firmware_unknown="Desconocido",
        more_devices="y {n} más",
        note_empty_title="No hay sesiones en este periodo",
        note_empty="No se registraron sesiones en el periodo {range}. Cuando tu dispositivo se sincronice "
        "con la app, tu uso aparecerá en el próximo informe.",
        note_sparse_title="Pocos datos en este periodo",
        note_sparse="Se registraron pocas sesiones en este periodo, así que las comparaciones y tendencias "
        "todavía dicen poco.",
        no_data="No hay sesiones en este periodo",
        export_sessions_ready="Tu exportación de sesiones está lista",
        export_data_ready="Tu exportación de datos está lista",
        exported_on="Exportado el {date}.",
    ),
    "pt": Catalog(
        title_monthly="Relatório de uso mensal",
        title_weekly="Relatório de uso semanal",
        prepared_for="Preparado para",
        period="Período",
        devices="Dispositivos",
        time_zone="Fuso horário",
        generated="Gerado em {when}",
        key_figures="Números principais",
        sessions="Sessões",
        working_minutes="Minutos de uso",
        active_days="Dias ativos",
        current_streak="Sequência atual",
        longest_streak="Maior sequência",
        goal_achievement="Meta atingida",
        unit_min="min",
        day_one="dia",
        day_other="dias",
        active_days_of="de {total} dias",
        no_goal="Nenhuma meta definida",
        goal_progress="{achieved} de {target} min",
        vs_previous="{change} em relação ao período anterior",
        no_previous="Sem dados anteriores para comparar",
        daily_title="Minutos de uso por dia",
        by_shot_type="Por tipo de tratamento",
        by_mode="Por modo",
        by_level="Por nível",
        level="Nível {n}",
        shot_led="Cuidado LED",
        col_minutes="Minutos",
        col_sessions="Sessões",
        col_share="Participação",
        comparison_title="Comparação com o período anterior",
        col_this="Este período",
        col_previous="Período anterior",
        col_change="Variação",
        per_active_day="Minutos por dia ativo",
        per_session="Minutos por sessão",
        previous_range="Período anterior: {range}",
        goals_title="Metas",
        goal_weekly="Meta semanal",
        goal_monthly="Meta mensal",
        devices_title="Dispositivos",
        col_device="Dispositivo",
        col_model="Modelo",
        col_serial="Número de série",
        col_firmware="Firmware",
        firmware_unknown="Desconhecido",
        more_devices="e mais {n}",
        note_empty_title="Nenhuma sessão neste período",
        note_empty="Nenhuma sessão foi registrada no período {range}. Quando seu dispositivo sincronizar "
        "com o app, seu uso aparecerá no próximo relatório.",
        note_sparse_title="Poucos dados neste período",
        note_sparse="Poucas sessões foram registradas neste período, então comparações e tendências ainda dizem pouco.",
        no_data="Nenhuma sessão neste período",
        export_sessions_ready="Sua exportação de sessões está pronta",
        export_data_ready="Sua exportação de dados está pronta",
        exported_on="Exportado em {date}.",
    ),
    "th": Catalog(
        title_monthly="รายงานการใช้งานรายเดือน",
        title_weekly="รายงานการใช้งานรายสัปดาห์",
        prepared_for="จัดทำสำหรับ",
        period="ช่วงเวลา",
        devices="อุปกรณ์",
        time_zone="เขตเวลา",
        generated="สร้างเมื่อ {when}",
        key_figures="ตัวเลขสำคัญ",
        sessions="จำนวนครั้ง",
        working_minutes="นาทีที่ใช้งาน",
        active_days="วันที่ใช้งาน",
        current_streak="ใช้ต่อเนื่องล่าสุด",
        longest_streak="ใช้ต่อเนื่องนานที่สุด",
        goal_achievement="ความสำเร็จตามเป้าหมาย",
        unit_min="นาที",
        day_one="วัน",
        day_other="วัน",
        active_days_of="จาก {total} วัน",
        no_goal="ยังไม่ได้ตั้งเป้าหมาย",
        goal_progress="{achieved} จาก {target} นาที",
        vs_previous="{change} เทียบกับช่วงก่อนหน้า",
        no_previous="ไม่มีข้อมูลก่อนหน้าให้เปรียบเทียบ",
        daily_title="นาทีที่ใช้งานรายวัน",
        by_shot_type="ตามประเภทการดูแล",
        by_mode="ตามโหมด",
        by_level="ตามระดับ",
        level="ระดับ {n}",
        shot_led="LED Care",
        col_minutes="นาที",
        col_sessions="ครั้ง",
        col_share="สัดส่วน",
        comparison_title="เปรียบเทียบกับช่วงก่อนหน้า",
        col_this="ช่วงนี้",
        col_previous="ช่วงก่อนหน้า",
        col_change="การเปลี่ยนแปลง",
        per_active_day="นาทีต่อวันที่ใช้งาน",
        per_session="นาทีต่อครั้ง",
        previous_range="ช่วงก่อนหน้า: {range}",
        goals_title="เป้าหมาย",
        goal_weekly="เป้าหมายรายสัปดาห์",
        goal_monthly="เป้าหมายรายเดือน",
        devices_title="อุปกรณ์",
        col_device="อุปกรณ์",
        col_model="รุ่น",
        col_serial="หมายเลขเครื่อง",
        col_firmware="เฟิร์มแวร์",
        firmware_unknown="ไม่ทราบ",
        more_devices="และอีก {n} เครื่อง",
        note_empty_title="ไม่มีการใช้งานในช่วงนี้",
        note_empty="ไม่มีการบันทึกการใช้งานในช่วง {range} เมื่ออุปกรณ์ซิงค์กับแอปแล้ว การใช้งานของคุณจะแสดงในรายงานฉบับถัดไป",
        note_sparse_title="ข้อมูลในช่วงนี้มีไม่มาก",
        note_sparse="ช่วงนี้มีการบันทึกการใช้งานเพียงไม่กี่ครั้ง การเปรียบเทียบและแนวโน้มจึงอาจยังไม่ชัดเจน",
        no_data="ไม่มีการใช้งานในช่วงนี้",
        export_sessions_ready="ไฟล์ส่งออกเซสชันของคุณพร้อมแล้ว",
        export_data_ready="ไฟล์ส่งออกข้อมูลของคุณพร้อมแล้ว",
        exported_on="ส่งออกเมื่อ {date}",
    ),
    "vi": Catalog(
        title_monthly="Báo cáo sử dụng hằng tháng",
        title_weekly="Báo cáo sử dụng hằng tuần",
        prepared_for="Người dùng",
        period="Kỳ báo cáo",
        devices="Thiết bị",
        time_zone="Múi giờ",
        generated="Tạo lúc {when}",
        key_figures="Chỉ số chính",
        sessions="Số lần sử dụng",
        working_minutes="Số phút sử dụng",
        active_days="Số ngày sử dụng",
        current_streak="Chuỗi ngày hiện tại",
        longest_streak="Chuỗi ngày dài nhất",
        goal_achievement="Mức hoàn thành mục tiêu",
        unit_min="phút",
        day_one="ngày",
        day_other="ngày",
        active_days_of="trên {total} ngày",
        no_goal="Chưa đặt mục tiêu",
        goal_progress="{achieved} / {target} phút",
        vs_previous="{change} so với kỳ trước",
        no_previous="Chưa có dữ liệu kỳ trước để so sánh",
        daily_title="Số phút sử dụng mỗi ngày",
        by_shot_type="Theo loại liệu trình",
        by_mode="Theo chế độ",
        by_level="Theo mức",
        level="Mức {n}",
        shot_led="Chăm sóc LED",
        col_minutes="Phút",
        col_sessions="Số lần",
        col_share="Tỷ lệ",
        comparison_title="So sánh với kỳ trước",
        col_this="Kỳ này",
        col_previous="Kỳ trước",
        col_change="Thay đổi",
        per_active_day="Phút mỗi ngày sử dụng",
        per_session="Phút mỗi lần",
        previous_range="Kỳ trước: {range}",
        goals_title="Mục tiêu",
        goal_weekly="Mục tiêu tuần",
        goal_monthly="Mục tiêu tháng",
        devices_title="Thiết bị",
        col_device="Thiết bị",
        col_model="Mẫu máy",
        col_serial="Số sê-ri",
        col_firmware="Firmware",
        firmware_unknown="Không rõ",
        more_devices="và {n} thiết bị khác",
        note_empty_title="Không có lần sử dụng nào trong kỳ này",
        note_empty="Không ghi nhận lần sử dụng nào trong khoảng {range}. Khi thiết bị được đồng bộ với ứng dụng, "
        "dữ liệu sử dụng sẽ xuất hiện trong báo cáo tiếp theo.",
        note_sparse_title="Kỳ này có ít dữ liệu",
        note_sparse="Kỳ này chỉ ghi nhận ít lần sử dụng, nên so sánh và xu hướng có thể chưa phản ánh đúng.",
        no_data="Không có lần sử dụng nào trong kỳ này",
        export_sessions_ready="Bản xuất phiên sử dụng của bạn đã sẵn sàng",
        export_data_ready="Bản xuất dữ liệu của bạn đã sẵn sàng",
        exported_on="Đã xuất ngày {date}.",
    ),
}


class Formatter:
    """Numbers, percentages, dates and ranges the way the locale writes them (CLDR data via babel)."""

    def __init__(self, locale: Locale, zone: tzinfo) -> None:
        self.locale = locale
        self.zone = zone
        self._babel = _babel_locale(locale)
        # Thai dates count years in the Buddhist Era (CE + 543), which babel's CLDR data does not apply
        self._era_offset = 543 if locale == "th" else 0
        self._plus = get_plus_sign_symbol(locale)
        self._minus = get_minus_sign_symbol(locale)

    def integer(self, n: int) -> str:
        return _number(self.locale, n, "#,##0")

    def decimal(self, x: float, digits: int = 1) -> str:
        return _number(self.locale, round(x, digits), "#,##0." + "0" * digits)

    def percent(self, ratio: float) -> str:
        return _percent(self.locale, round(ratio, 4))

    def signed_percent(self, ratio: float) -> str:
        sign = self._plus if ratio > 0 else self._minus if ratio < 0 else ""
        return sign + self.percent(abs(ratio))

    def signed_integer(self, n: int) -> str:
        sign = self._plus if n > 0 else self._minus if n < 0 else ""
        return sign + self.integer(abs(n))

    def signed_decimal(self, x: float) -> str:
        x = round(x, 1)
        sign = self._plus if x > 0 else self._minus if x < 0 else ""
        return sign + self.decimal(abs(x))

    def days(self, n: int, catalog: Catalog) -> str:
        """The unit after a count of days: "day"/"days", "일", …"""
        return catalog.day_one if self._babel.plural_form(n) == "one" else catalog.day_other

    def _era(self, text: str, *years: int) -> str:
        """``text`` with each Gregorian year written in the locale's era (only Thai differs)."""
        if self._era_offset:
            for year in sorted(set(years), reverse=True):
                text = text.replace(str(year), str(year + self._era_offset))
        return text

    def month(self, d: date) -> str:
        return self._era(format_skeleton("yMMMM", d, locale=self.locale), d.year)

    def day_month(self, d: date) -> str:
        return format_skeleton("MMMd", d, locale=self.locale)

    def day_of_month(self, d: date) -> str:
        return format_skeleton("d", d, locale=self.locale)

    def weekday(self, d: date) -> str:
        return format_date(d, "EEE", locale=self.locale)

    def date_range(self, start: date, end: date) -> str:
        if start == end:
            return self._era(format_skeleton("yMMMd", start, locale=self.locale), start.year)
        return self._era(format_interval(start, end, "yMMMd", locale=self.locale), start.year, end.year)

    def timestamp(self, when: datetime) -> str:
        local = when.astimezone(self.zone)
        day = self._era(format_skeleton("yMMMd", local, locale=self.locale), local.year)
        # 24-hour clock except in English (CLDR's short time gives Korean a Latin "PM")
        time = (
            format_time(local, "short", locale="en")
            if self.locale == "en"
            else format_skeleton("Hm", local, locale=self.locale)
        )
        pattern = str(self._babel.datetime_formats["medium"])
        return pattern.replace("{1}", day).replace("{0}", time)

    def utc_offset(self, when: datetime) -> str:
        offset = when.astimezone(self.zone).utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        sign = "+" if minutes >= 0 else "-"
        return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=8192)
def _number(locale: Locale, x: float, pattern: str) -> str:
    return format_decimal(x, format=pattern, locale=locale)


@lru_cache(maxsize=8192)
def _percent(locale: Locale, ratio: float) -> str:
    return format_percent(ratio, format="#,##0%", locale=locale)


@lru_cache(maxsize=16)
def _babel_locale(locale: Locale) -> BabelLocale:
    return BabelLocale.parse(locale)
